// The peft-summarize command line as users run it: --help documents every option, a
// text from a file or standard input is summarized with the default SmolLM2, streaming
// prints the same summary, empty input gives an empty summary, and bad options, a
// missing model or a missing input file give the documented exit status and a message
// naming them.
#define BOOST_TEST_MODULE peft_summarize
#include <cstdio>
#include <string>

#include "test_support.h"
#include "tools/run_tool.h"

namespace {

using Run = peft_test::ToolRun;

// Runs peft-summarize from the build tree with `args` (shell words, already quoted).
Run summarize(const std::string& args) {
  return peft_test::run_tool("peft-summarize", "--threads 2 " + args);
}

const char* kText =
    "The city council met on Tuesday evening to discuss the budget for next year. After a long debate, the "
    "members agreed to increase funding for public libraries by twelve percent and to hire four new "
    "librarians. The vote on repairing the old bridge was postponed until March, because the engineers' "
    "report is not finished.";

}  // namespace

BOOST_AUTO_TEST_CASE(help_documents_every_option) {
  const Run r = summarize("--help");
  BOOST_CHECK_EQUAL(r.status, 0);
  for (const char* option :
       {"--model",           "--quant",          "--group-size",     "--adapter",
        "--instruction",     "--max-new-tokens", "--min-new-tokens", "--beam",
        "--length-penalty",  "--early-stopping", "--sample",         "--temperature",
        "--top-k",           "--top-p",          "--seed",           "--repetition-penalty",
        "--no-repeat-ngram", "--stop",           "--chunk-tokens",   "--overlap-tokens",
        "--stream",          "--threads",        "--source-lang",    "--target-lang"})
    BOOST_CHECK_MESSAGE(r.out.find(std::string("\n  ") + option + " ") != std::string::npos,
                        option << " is not documented by --help");
}

BOOST_AUTO_TEST_CASE(summarizes_a_file_and_stdin_alike_and_streams_the_same_text) {
  peft_test::require_model_file("smollm2-135m-instruct");
  peft_test::TempDir dir;
  peft_test::write_file(dir / "text.txt", kText);
  const Run file = summarize("--max-new-tokens 40 '" + (dir / "text.txt").string() + "'");
  BOOST_TEST_MESSAGE(file.out << file.err);
  BOOST_CHECK_EQUAL(file.status, 0);
  BOOST_TEST(file.out.size() > 20u);
  BOOST_TEST(peft_test::contains_all(file.out, {"librar"}));
  const Run stdin_run = summarize("--max-new-tokens 40 - < '" + (dir / "text.txt").string() + "'");
  BOOST_CHECK_EQUAL(stdin_run.out, file.out);
  const Run streamed = summarize("--stream --max-new-tokens 40 < '" + (dir / "text.txt").string() + "'");
  BOOST_CHECK_EQUAL(streamed.out, file.out);
  // Empty input: an empty summary, the model is not run.
  peft_test::write_file(dir / "empty.txt", "  \n");
  const Run empty = summarize("'" + (dir / "empty.txt").string() + "'");
  BOOST_CHECK_EQUAL(empty.status, 0);
  BOOST_CHECK_EQUAL(empty.out, "\n");
}

BOOST_AUTO_TEST_CASE(bad_input_gives_the_documented_status_and_names_it) {
  Run r = summarize("--beam");
  BOOST_CHECK_EQUAL(r.status, 2);
  r = summarize("--top-p 1.5 x.txt");
  BOOST_CHECK_EQUAL(r.status, 2);
  BOOST_TEST(peft_test::contains_all(r.err, {"top_p"}));
  r = summarize("--no-such-option");
  BOOST_CHECK_EQUAL(r.status, 2);
  r = summarize("/nonexistent/text.txt");
  BOOST_CHECK_EQUAL(r.status, 1);
  BOOST_TEST(peft_test::contains_all(r.err, {"/nonexistent/text.txt"}));
  peft_test::TempDir dir;
  peft_test::write_file(dir / "t.txt", kText);
  r = summarize("--model /nonexistent/model '" + (dir / "t.txt").string() + "'");
  BOOST_CHECK_EQUAL(r.status, 1);
  BOOST_TEST(peft_test::contains_all(r.err, {"/nonexistent/model"}));
}
