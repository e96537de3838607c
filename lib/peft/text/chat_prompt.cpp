#include "peft/text/chat_prompt.h"

#include "peft/error.h"

namespace peft::text {

namespace {

// Text between `open` and `close` in `s` after the first `open`, or "" if absent.
std::string between(const std::string& s, const std::string& open, const std::string& close) {
  const size_t a = s.find(open);
  if (a == std::string::npos) return "";
  const size_t b = s.find(close, a + open.size());
  if (b == std::string::npos) return "";
  return s.substr(a + open.size(), b - a - open.size());
}

// Jinja's `| trim`: Python's str.strip() (whitespace at both ends).
std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

}  // namespace

ChatTemplate parse_chat_template(const std::string& src, const std::string& bos_text) {
  ChatTemplate t;
  if (src.find("<|im_start|>") != std::string::npos) {
    t.format = ChatFormat::chatml;
    // "{{ '<|im_start|>system\nYou are ...<|im_end|>\n' }}" inside the first-message branch.
    t.default_system = between(src, "'<|im_start|>system\n", "<|im_end|>");
    return t;
  }
  if (src.find("<|start_header_id|>") != std::string::npos) {
    if (src.find("Cutting Knowledge Date") != std::string::npos || src.find("tools") != std::string::npos)
      throw ValueError(
          "chat template: Llama 3.1+'s template (dates, tools) is not supported; only Llama 3.0's");
    t.format = ChatFormat::llama3;
    t.bos_text = bos_text;
    return t;
  }
  throw ValueError("chat template '" + src.substr(0, 80) +
                   "...' is of a family not supported here (ChatML, Llama 3)");
}

std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt) {
  std::string out;
  switch (t.format) {
    case ChatFormat::chatml:
      if (!t.default_system.empty() && (messages.empty() || messages.front().role != "system"))
        out += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
      for (const ChatMessage& m : messages)
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case ChatFormat::llama3:
      out += t.bos_text;
      for (const ChatMessage& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
  }
  return out;
}

}  // namespace peft::text
