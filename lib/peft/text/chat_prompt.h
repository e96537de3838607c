// Chat prompts for instruction-tuned models, rendered as the model's own chat template
// would render them. A full Jinja engine is not needed for the templates in use: the
// template's family is recognised by its markers and rendered here, with the default
// system prompt the template injects (SmolLM2's "You are a helpful AI assistant named
// SmolLM...") taken from the template text itself.
#pragma once

#include <string>
#include <vector>

namespace peft::text {

enum class ChatFormat {
  chatml,  // <|im_start|>role\ncontent<|im_end|>\n (SmolLM2, Qwen, many others)
  llama3,  // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> (Llama 3.0)
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct ChatTemplate {
  ChatFormat format = ChatFormat::chatml;
  // System prompt the template adds when the conversation has none ("" for none).
  std::string default_system;
  // Written before the first message (Llama 3: "<|begin_of_text|>").
  std::string bos_text;
};

// Recognises a Jinja chat template's family. Throws ValueError (quoting its start) for
// a template of another family, and for an empty one.
ChatTemplate parse_chat_template(const std::string& jinja_source, const std::string& bos_text = "");

// The prompt text, ending with the assistant's header when add_generation_prompt.
std::string render_chat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt = true);

}  // namespace peft::text
