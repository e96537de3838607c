// whisperasr: live or recorded speech (audio/x-raw F32LE 16 kHz mono) to timestamped
// text (text/x-raw utf8), one buffer per final segment or per word, with Whisper models
// quantized at load and LoRA/AdaLoRA adapters swappable while playing. Inference runs on
// the element's own thread (the src pad's task) over peft::transcription::StreamingTranscriber;
// see gstwhisperasr.cpp for the behaviour and every property.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WHISPER_ASR (gst_whisper_asr_get_type())
G_DECLARE_FINAL_TYPE(GstWhisperAsr, gst_whisper_asr, GST, WHISPER_ASR, GstElement)

GST_ELEMENT_REGISTER_DECLARE(whisperasr);

G_END_DECLS
