// peft-batch's manifest: OUTPUT_DIR/manifest.jsonl, one JSON object per line, one line
// per input file once compacted. JSON Lines so that a batch killed at any moment leaves
// a readable file: while a batch runs each finished file is appended as one line with a
// single write(2) (a line is either there in full or, after a crash mid-write, a
// truncated last line that load() skips); at the start and end of a run the file is
// rewritten compactly through a temporary file and rename(2), so it is never half-written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace peft::batch {

struct Record {
  std::string input;                 // path relative to INPUT_DIR, '/'-separated
  std::uintmax_t size = 0;           // bytes of the input when it was processed
  std::int64_t mtime_ns = 0;         // its modification time (ns since the epoch)
  std::string status;                // "done" or "failed"
  std::vector<std::string> outputs;  // paths relative to OUTPUT_DIR (done only)
  std::string error;                 // the transcriber's message (failed only)
  double seconds = 0.0;              // wall time of the transcriber run
  std::vector<std::string> options;  // transcriber options that shape the outputs
};

// Records keyed by input; a later line for the same input replaces an earlier one.
using Manifest = std::map<std::string, Record>;

// Reads `path` (missing: empty). Lines that do not parse or lack the required keys are
// skipped and counted in `*skipped` (a line cut short by a kill is the expected case).
Manifest load_manifest(const std::filesystem::path& path, size_t* skipped = nullptr);

// One line of JSON, without the newline.
std::string to_json_line(const Record& record);

// Appends one record as a line and flushes it to disk. Throws std::runtime_error naming
// the file on failure.
void append_record(const std::filesystem::path& path, const Record& record);

// Replaces `path` with one line per record, sorted by input: written to a temporary
// file beside it, synced, then renamed over it.
void rewrite_manifest(const std::filesystem::path& path, const Manifest& manifest);

}  // namespace peft::batch
