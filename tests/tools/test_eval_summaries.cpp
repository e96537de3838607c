// The eval-summaries command line: --help documents every option; pairs are summarized
// with the default SmolLM2 and scored, predictions written one line per pair; a run
// interrupted mid-write (the file ends in a cut line) resumes, summarizing only the
// pairs not written and printing the same means; bad options and bad pair files give
// the documented exit status and a message naming them.
#define BOOST_TEST_MODULE eval_summaries
#include <string>
#include <vector>

#include "test_support.h"
#include "tools/run_tool.h"

namespace {

using Run = peft_test::ToolRun;

Run evaluate(const std::string& args) { return peft_test::run_tool("eval-summaries", "--threads 2 " + args); }

std::string quoted(const peft_test::fs::path& p) { return "'" + p.string() + "'"; }

// Three pairs in make-summary-dataset's format.
const char* kPairs =
    R"({"id": "a", "text": "A command-line tool that converts images between formats such as PNG, JPEG and WebP, resizing and cropping them on the way.", "summary": "image format converter"})"
    "\n"
    R"({"id": "b", "text": "This library parses and writes JSON documents in C. It is small, has no dependencies and validates UTF-8 input.", "summary": "small JSON library for C"})"
    "\n"
    R"({"id": "c", "text": "A text editor for the terminal with syntax highlighting, multiple buffers and a plugin system written in Lua.", "summary": "terminal text editor"})"
    "\n";

// The lines of `text` from the one starting with "metric" on (the means), or "".
std::string means(const std::string& text) {
  const size_t at = text.find("metric");
  return at == std::string::npos ? std::string() : text.substr(at);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  for (size_t b = 0, e; b < text.size(); b = e + 1) {
    e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    out.push_back(text.substr(b, e - b));
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(help_documents_every_option) {
  const Run r = evaluate("--help");
  BOOST_CHECK_EQUAL(r.status, 0);
  for (const char* option : {"--model", "--quant", "--group-size", "--adapter", "--instruction",
                             "--max-new-tokens", "--beam", "--limit", "--predictions", "--threads"})
    BOOST_CHECK_MESSAGE(r.out.find(std::string("\n  ") + option + " ") != std::string::npos,
                        option << " is not documented by --help");
}

BOOST_AUTO_TEST_CASE(scores_pairs_and_an_interrupted_run_resumes_with_the_same_means) {
  peft_test::require_model_file("smollm2-135m-instruct");
  peft_test::TempDir dir;
  peft_test::write_file(dir / "pairs.jsonl", kPairs);
  const std::string common = "--max-new-tokens 12 --predictions " + quoted(dir / "pred.jsonl") + " ";
  const Run first = evaluate(common + quoted(dir / "pairs.jsonl"));
  BOOST_TEST_MESSAGE(first.out << first.err);
  BOOST_REQUIRE_EQUAL(first.status, 0);
  BOOST_TEST(peft_test::contains_all(
      first.out, {"pairs 3 (summarized now 3", "rouge1", "rouge2", "rougeL", "rougeLsum"}));
  const std::string written = peft_test::read_file(dir / "pred.jsonl");
  const std::vector<std::string> pred = lines(written);
  BOOST_REQUIRE_EQUAL(pred.size(), 3u);
  BOOST_TEST(peft_test::contains_all(pred[0], {R"("id":"a")", R"("prediction":)", R"("rouge1":)"}));
  BOOST_TEST(peft_test::contains_all(pred[2], {R"("id":"c")"}));

  // Interrupted while writing the second line: the first stays, the second is cut.
  peft_test::write_file(dir / "pred.jsonl", pred[0] + "\n" + pred[1].substr(0, pred[1].size() / 2));
  const Run resumed = evaluate(common + quoted(dir / "pairs.jsonl"));
  BOOST_TEST_MESSAGE(resumed.out << resumed.err);
  BOOST_REQUIRE_EQUAL(resumed.status, 0);
  BOOST_TEST(peft_test::contains_all(resumed.out, {"pairs 3 (summarized now 2"}));
  BOOST_TEST(peft_test::contains_all(resumed.err, {"pred.jsonl:2", "unreadable line"}));
  BOOST_TEST(!means(first.out).empty());
  BOOST_CHECK_EQUAL(means(resumed.out), means(first.out));

  // --limit: the first pair only, read back from the predictions.
  const Run limited = evaluate(common + "--limit 1 " + quoted(dir / "pairs.jsonl"));
  BOOST_CHECK_EQUAL(limited.status, 0);
  BOOST_TEST(peft_test::contains_all(limited.out, {"pairs 1 (summarized now 0"}));
}

BOOST_AUTO_TEST_CASE(bad_input_gives_the_documented_status_and_names_it) {
  Run r = evaluate("--no-such-option x.jsonl");
  BOOST_CHECK_EQUAL(r.status, 2);
  BOOST_TEST(peft_test::contains_all(r.err, {"eval-summaries: ", "--no-such-option"}));
  r = evaluate("--limit many x.jsonl");
  BOOST_CHECK_EQUAL(r.status, 2);
  BOOST_TEST(peft_test::contains_all(r.err, {"--limit", "many"}));
  r = evaluate("");
  BOOST_CHECK_EQUAL(r.status, 2);
  r = evaluate("/nonexistent/pairs.jsonl");
  BOOST_CHECK_EQUAL(r.status, 1);
  BOOST_TEST(peft_test::contains_all(r.err, {"/nonexistent/pairs.jsonl"}));

  peft_test::require_model_file("smollm2-135m-instruct");
  peft_test::TempDir dir;
  peft_test::write_file(dir / "bad.jsonl", std::string(kPairs) + "{not json\n");
  r = evaluate("--max-new-tokens 4 " + quoted(dir / "bad.jsonl"));
  BOOST_CHECK_EQUAL(r.status, 1);
  BOOST_TEST(peft_test::contains_all(r.err, {"bad.jsonl", "line 4"}));
  peft_test::write_file(dir / "empty.jsonl", "");
  r = evaluate(quoted(dir / "empty.jsonl"));
  BOOST_CHECK_EQUAL(r.status, 1);
  BOOST_TEST(peft_test::contains_all(r.err, {"empty.jsonl", "no pairs"}));
}
