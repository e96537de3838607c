// make-summary-dataset as users run it: on real Translation-en stanzas
// (tests/fixtures/text/debian_descriptions) the pairs equal hand-checked ones and each
// drop rule is counted; the split of a package does not change when the input is
// reordered or cut down; malformed stanzas give a warning naming the line and are
// skipped; a failed run leaves no output file behind and does not touch an old one.
#define BOOST_TEST_MODULE make_summary_dataset
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.h"
#include "tools/run_tool.h"

namespace {

using peft_test::fs::path;

using Run = peft_test::ToolRun;

Run run(const std::string& args) { return peft_test::run_tool("make-summary-dataset", args); }

std::string quote(const path& p) { return "'" + p.string() + "'"; }

path fixture(const std::string& name) {
  return peft_test::fixtures_dir() / "text" / "debian_descriptions" / name;
}

std::vector<nlohmann::json> parse_jsonl(const std::string& text) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::map<std::string, nlohmann::json> by_id(const std::vector<nlohmann::json>& rows) {
  std::map<std::string, nlohmann::json> m;
  for (const auto& r : rows)
    BOOST_CHECK_MESSAGE(m.emplace(r.at("id").get<std::string>(), r).second, r.at("id"));
  return m;
}

// The stanzas of a control file, without their separating blank lines.
std::vector<std::string> stanzas_of(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find("\n\n", start);
    if (end == std::string::npos) end = text.size();
    std::string s = text.substr(start, end - start);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    if (!s.empty()) out.push_back(s + "\n");
    start = end + 2;
  }
  return out;
}

std::string join_stanzas(const std::vector<std::string>& stanzas) {
  std::string out;
  for (const auto& s : stanzas) out += s + "\n";
  return out;
}

const std::string kFixtures =
    quote(fixture("Translation-en")) + " " + quote(fixture("Translation-en.security"));

}  // namespace

BOOST_AUTO_TEST_CASE(help_documents_every_option) {
  const Run r = run("--help");
  BOOST_CHECK_EQUAL(r.status, 0);
  for (const char* option : {"--output", "--min-words", "--max-words", "--split-seed", "--quiet", "--help"})
    BOOST_CHECK_MESSAGE(r.out.find(std::string("\n  ") + option + " ") != std::string::npos,
                        option << " is not documented by --help");
  for (const char* rule : {"empty text", "too short/long", "same package", "same text", "FNV-1a", "5.6.13"})
    BOOST_CHECK_MESSAGE(r.out.find(rule) != std::string::npos, "--help does not explain " << rule);
}

// The fixture: 25 stanzas of bookworm's main Translation-en and the 2 linux-cpupower
// stanzas of bookworm-security's, copied verbatim.
BOOST_AUTO_TEST_CASE(real_stanzas_give_the_hand_checked_pairs) {
  const Run r = run(kFixtures);
  BOOST_REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto rows = by_id(parse_jsonl(r.out));
  // Every id once, sorted; dropped: apertium-separable and binutils-aarch64-linux-gnu-dbg
  // (6 and 8 words), default-jdk's arm64 variant (the amd64 one has the same length and
  // sorts first), linux-cpupower's short variant (twice) and its security repeat,
  // bird2-doc (bird-doc's exact pair), libctf0-dbg (libctf0's text, another summary).
  const std::vector<std::string> ids = {"0ad",
                                        "0ad-data",
                                        "0ad-data-common",
                                        "0xffff",
                                        "2048",
                                        "adequate",
                                        "any2fasta",
                                        "belvu",
                                        "bird-doc",
                                        "default-jdk",
                                        "dwww",
                                        "hpack",
                                        "libctf0",
                                        "libghc-hpack-dev",
                                        "linux-cpupower",
                                        "mugshot",
                                        "python3-django-setuptest",
                                        "qgit",
                                        "whysynth"};
  std::vector<std::string> got;
  for (const auto& row : parse_jsonl(r.out)) got.push_back(row.at("id").get<std::string>());
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), ids.begin(), ids.end());
  BOOST_CHECK_MESSAGE(r.err.find("27 stanzas, 0 malformed") != std::string::npos, r.err);
  BOOST_CHECK_MESSAGE(r.err.find("dropped: empty text 0, too short (< 10 words) 2, too long (> 400 words) 0, "
                                 "same package 4 (1 identical, 3 other descriptions), same text 2 "
                                 "(1 exact duplicate pairs, 1 other summaries)") != std::string::npos,
                      r.err);
  BOOST_CHECK_MESSAGE(r.err.find("kept 19: train 16, validation 0, test 3") != std::string::npos, r.err);

  // Hand-checked against the stanzas: paragraphs, lists, list items continued on more
  // indented lines, verbatim command lines, a " .cabal" line that is text, not a separator.
  size_t checked = 0;
  for (const auto& expected : parse_jsonl(peft_test::read_file(fixture("expected-some.jsonl")))) {
    const std::string id = expected.at("id").get<std::string>();
    BOOST_REQUIRE_MESSAGE(rows.count(id), id << " is missing");
    BOOST_CHECK_MESSAGE(rows.at(id) == expected, id << ":\n"
                                                    << rows.at(id).dump(1) << "\nexpected\n"
                                                    << expected.dump(1));
    ++checked;
  }
  BOOST_CHECK_EQUAL(checked, 9u);
  // Keys in the documented order.
  BOOST_CHECK_EQUAL(r.out.substr(0, r.out.find("\"text\"")), "{\"id\":\"0ad\",");
}

BOOST_AUTO_TEST_CASE(families_sharing_a_first_paragraph_share_a_split) {
  const auto rows = by_id(parse_jsonl(run(kFixtures).out));
  BOOST_CHECK_EQUAL(rows.at("0ad").at("split"), rows.at("0ad-data").at("split"));
  BOOST_CHECK_EQUAL(rows.at("0ad").at("split"), rows.at("0ad-data-common").at("split"));
  BOOST_CHECK_EQUAL(rows.at("hpack").at("split"), "test");
  BOOST_CHECK_EQUAL(rows.at("libghc-hpack-dev").at("split"), "test");
}

BOOST_AUTO_TEST_CASE(family_cap_keeps_the_smallest_names) {
  const Run r = run("--max-per-family 1 " + kFixtures);
  BOOST_REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto capped = by_id(parse_jsonl(r.out));
  const auto all = by_id(parse_jsonl(run(kFixtures).out));
  BOOST_CHECK_EQUAL(capped.size(), all.size() - 3);
  for (const char* dropped : {"0ad-data", "0ad-data-common", "libghc-hpack-dev"})
    BOOST_CHECK_MESSAGE(!capped.count(dropped), dropped << " kept");
  for (const auto& [id, row] : capped) BOOST_CHECK_EQUAL(row, all.at(id));
  BOOST_CHECK_MESSAGE(r.err.find("family cap 3\n") != std::string::npos, r.err);
  const auto two = by_id(parse_jsonl(run("--max-per-family 2 " + kFixtures).out));
  BOOST_CHECK_EQUAL(two.size(), all.size() - 1);
  BOOST_CHECK(two.count("0ad-data") && !two.count("0ad-data-common") && two.count("libghc-hpack-dev"));
}

BOOST_AUTO_TEST_CASE(split_and_pairs_do_not_depend_on_order_or_on_other_stanzas) {
  peft_test::TempDir dir;
  const auto stanzas = stanzas_of(peft_test::read_file(fixture("Translation-en")) + "\n" +
                                  peft_test::read_file(fixture("Translation-en.security")));
  BOOST_REQUIRE_EQUAL(stanzas.size(), 27u);
  const std::string all = run(kFixtures).out;

  std::vector<std::string> reversed(stanzas.rbegin(), stanzas.rend());
  peft_test::write_file(dir / "reversed", join_stanzas(reversed));
  BOOST_CHECK_EQUAL(run(quote(dir / "reversed")).out, all);  // byte for byte

  // Every other stanza: a pair still there is the one of the full run, or (its family
  // member or variant removed) one of the same text and split.
  std::vector<std::string> some;
  for (size_t i = 0; i < stanzas.size(); i += 2) some.push_back(stanzas[i]);
  peft_test::write_file(dir / "some", join_stanzas(some));
  const auto full = by_id(parse_jsonl(all));
  std::map<std::string, nlohmann::json> full_by_text;
  for (const auto& [id, row] : full) full_by_text[row.at("text").get<std::string>()] = row;
  const auto part = by_id(parse_jsonl(run(quote(dir / "some")).out));
  BOOST_CHECK_GE(part.size(), 8u);
  for (const auto& [id, row] : part) {
    const auto same_text = full_by_text.find(row.at("text").get<std::string>());
    if (same_text == full_by_text.end()) {
      // Only a variant that lost to a longer description of the same package.
      BOOST_CHECK_MESSAGE(id == "linux-cpupower" || id == "default-jdk", id);
      continue;
    }
    BOOST_CHECK_EQUAL(row.at("split"), same_text->second.at("split"));
    if (full.count(id)) BOOST_CHECK_EQUAL(row, full.at(id));
  }
  // One stanza on its own.
  peft_test::write_file(dir / "one", stanzas[3]);
  const auto one = parse_jsonl(run(quote(dir / "one")).out);
  BOOST_REQUIRE_EQUAL(one.size(), 1u);
  BOOST_CHECK_EQUAL(one[0], full.at(one[0].at("id").get<std::string>()));
}

// 3000 distinct synthetic descriptions: the split is close to 90/5/5, and --split-seed
// gives another fixed split.
BOOST_AUTO_TEST_CASE(split_proportions_and_seed) {
  peft_test::TempDir dir;
  std::string text;
  for (int i = 0; i < 3000; ++i)
    text += "Package: pkg" + std::to_string(i) + "\nDescription: tool number " + std::to_string(i) +
            "\n This is the long description of tool " + std::to_string(i) +
            ", which does one thing and does it well for everyone.\n\n";
  peft_test::write_file(dir / "synthetic", text);
  std::map<std::string, int> count;
  const auto plain = by_id(parse_jsonl(run(quote(dir / "synthetic")).out));
  BOOST_REQUIRE_EQUAL(plain.size(), 3000u);
  for (const auto& [id, row] : plain) ++count[row.at("split").get<std::string>()];
  BOOST_TEST_MESSAGE("train " << count["train"] << ", validation " << count["validation"] << ", test "
                              << count["test"]);
  BOOST_CHECK(count["train"] >= 2600 && count["train"] <= 2800);
  BOOST_CHECK(count["validation"] >= 100 && count["validation"] <= 200);
  BOOST_CHECK(count["test"] >= 100 && count["test"] <= 200);

  const auto seeded = by_id(parse_jsonl(run("--split-seed 7 " + quote(dir / "synthetic")).out));
  BOOST_CHECK_EQUAL(by_id(parse_jsonl(run("--split-seed 7 " + quote(dir / "synthetic")).out)).size(), 3000u);
  int moved = 0;
  for (const auto& [id, row] : seeded) moved += row.at("split") != plain.at(id).at("split");
  BOOST_CHECK_GE(moved, 300);  // two independent 90/5/5 draws differ for about 18%
  BOOST_CHECK_EQUAL(run("--split-seed 7 " + quote(dir / "synthetic")).out,
                    run("--split-seed 7 " + quote(dir / "synthetic")).out);
}

// Packages-file stanzas (Description with the synopsis only, as bookworm's Packages
// lists carry) have no text; dumpavail-style ones with a long Description are used.
// Paragraph rules on small hand-made cases.
BOOST_AUTO_TEST_CASE(packages_format_and_rendering) {
  peft_test::TempDir dir;
  peft_test::write_file(dir / "Packages",
                        "Package: short-only\nVersion: 1.0\nDescription: a synopsis only\n"
                        "Description-md5: 0123456789abcdef0123456789abcdef\n\n"
                        "Package: full\nVersion: 2.0\nDescription:   the  synopsis \n"
                        " .\n First   paragraph\n wrapped here.\n .\n .\n Second:\n"
                        "  * item one\n    continued\n  * item two\n\tverbatim after a tab\n"
                        "     indented code\n .\n Last one, with a CRLF.\r\n .\n");
  const Run r = run("--min-words 1 " + quote(dir / "Packages"));
  BOOST_REQUIRE_MESSAGE(r.status == 0, r.err);
  const auto rows = parse_jsonl(r.out);
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_CHECK_EQUAL(rows[0].at("id"), "full");
  BOOST_CHECK_EQUAL(rows[0].at("summary"), "the synopsis");
  BOOST_CHECK_EQUAL(rows[0].at("text"),
                    "First paragraph wrapped here.\n\nSecond:\n* item one continued\n* item two\n"
                    "verbatim after a tab\nindented code\n\nLast one, with a CRLF.");
  BOOST_CHECK_MESSAGE(r.err.find("empty text 1,") != std::string::npos, r.err);
  // The same stanza with Description-en beside it (apt-cache show): Description-en wins.
  peft_test::write_file(dir / "show",
                        "Package: p\nDescription: short\nDescription-en: long\n english text here\n");
  const auto show = parse_jsonl(run("--min-words 1 " + quote(dir / "show")).out);
  BOOST_REQUIRE_EQUAL(show.size(), 1u);
  BOOST_CHECK_EQUAL(show[0].at("summary"), "long");
}

BOOST_AUTO_TEST_CASE(word_limits) {
  const auto rows = parse_jsonl(run("--min-words 30 --max-words 60 " + kFixtures).out);
  BOOST_REQUIRE(!rows.empty());
  for (const auto& row : rows) {
    std::istringstream words(row.at("text").get<std::string>());
    size_t n = 0;
    for (std::string w; words >> w;) ++n;
    BOOST_CHECK_MESSAGE(n >= 30 && n <= 60, row.at("id") << ": " << n << " words");
  }
  BOOST_CHECK_EQUAL(run("--min-words 30 --max-words 20 " + kFixtures).status, 2);
  BOOST_CHECK_EQUAL(run("--min-words x " + kFixtures).status, 2);
  BOOST_CHECK_EQUAL(run("--frobnicate " + kFixtures).status, 2);
}

BOOST_AUTO_TEST_CASE(malformed_stanzas_are_skipped_with_a_warning) {
  peft_test::TempDir dir;
  const std::string good =
      "Package: good\nDescription-en: fine\n a long enough description of ten words or more here\n\n";
  const std::string bad =
      good +
      "Package: badutf\nDescription-en: broken\n text with \xff\xfe bytes in it and more words to "
      "pass\n\n"                                                                           // 5-8
      "Package: nofield\n continuation\nDescription-en: x\n y z\n\n"                       // 9-13
      " orphan continuation\nPackage: orphan\n\n"                                          // 14-16
      "Package: nocolon\nDescription-en x\n\n"                                             // 17-19
      "Package: twice\nPackage: again\nDescription-en: s\n t\n\n"                          // 20-24
      "Description-en: no package\n some text\n\n"                                         // 25-27
      "Package: nodescription\nVersion: 1\n\n"                                             // 28-30
      "Package: nosynopsis\nDescription-en:\n some text of the package\n\n"                // 31-34
      "Package: overlong\nDescription-en: s\n \xe0\x80\xaf overlong slash\n\n"             // 35-38
      "Package: control\nDescription-en: s\n bell \x07 here\n\n"                           // 39-42
      "Package: truncated\nDescription-en: cut\n this stanza ends in the middle of a li";  // 43-45
  peft_test::write_file(dir / "bad", bad);
  const Run r = run(quote(dir / "bad"));
  BOOST_CHECK_EQUAL(r.status, 0);
  const auto rows = parse_jsonl(r.out);
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_CHECK_EQUAL(rows[0].at("id"), "good");
  const std::string file = (dir / "bad").string();
  for (const std::string& expected :
       {file + ":7: invalid UTF-8 byte at byte 12; stanza at line 5 skipped",
        file + ":9: Package field spans several lines", file + ":14: continuation line before any field",
        file + ":18: neither a \"Field: value\" line nor a continuation line",
        file + ":21: field Package repeated", file + ":25: no Package field", file + ":28: no Description",
        file + ":31: empty synopsis in nosynopsis", file + ":37: invalid UTF-8 sequence at byte 2",
        file + ":41: control character at byte 7", file + ":45: input ends without a final newline"})
    BOOST_CHECK_MESSAGE(r.err.find("warning: " + expected) != std::string::npos, "no warning '" << expected
                                                                                                << "' in\n"
                                                                                                << r.err);
  BOOST_CHECK_MESSAGE(r.err.find("12 stanzas, 11 malformed") != std::string::npos, r.err);
  BOOST_CHECK(run("--quiet " + quote(dir / "bad")).err.find("warning") == std::string::npos);

  // Nothing usable: exit status 1. A missing file: 2.
  peft_test::write_file(dir / "worse", bad.substr(good.size()));
  BOOST_CHECK_EQUAL(run(quote(dir / "worse")).status, 1);
  BOOST_CHECK_EQUAL(run("< /dev/null").status, 1);
  BOOST_CHECK_EQUAL(run(quote(dir / "absent")).status, 2);
  // Binary junk does not crash it.
  std::string junk;
  for (int i = 0; i < 20000; ++i) junk += static_cast<char>((i * 7919 + 13) % 256);
  peft_test::write_file(dir / "junk", junk);
  BOOST_CHECK_EQUAL(run("--quiet " + quote(dir / "junk")).status, 1);
}

// A stanza cut at a line end has its final newline; its Description-md5 (the MD5 of the
// whole description, which every one of the 67,471 stanzas of the real lists matches)
// gives it away, as it does an edited word.
BOOST_AUTO_TEST_CASE(description_md5_catches_truncated_and_altered_stanzas) {
  peft_test::TempDir dir;
  const auto stanzas = stanzas_of(peft_test::read_file(fixture("Translation-en")));
  std::string cut = stanzas[3];  // 0xffff
  BOOST_REQUIRE(cut.rfind("Package: 0xffff\n", 0) == 0);
  cut.erase(cut.rfind('\n', cut.size() - 2) + 1);  // without its last line
  std::string altered = stanzas[4];                // 2048
  BOOST_REQUIRE(altered.rfind("Package: 2048\n", 0) == 0);
  altered.replace(altered.find("puzzle game where"), 6, "Puzzle");
  peft_test::write_file(dir / "cut", stanzas[0] + "\n" + cut + "\n" + altered);
  const Run r = run(quote(dir / "cut"));
  BOOST_REQUIRE_EQUAL(r.status, 0);
  const auto rows = parse_jsonl(r.out);
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_CHECK_EQUAL(rows[0].at("id"), "0ad");
  const std::string file = (dir / "cut").string();
  BOOST_CHECK_MESSAGE(
      r.err.find(file + ":14: Description-md5 183c49f6505eb3432d1b069800f1f5b6 does not match "
                        "the description of 0xffff (truncated or altered stanza?)") != std::string::npos,
      r.err);
  BOOST_CHECK_MESSAGE(r.err.find("does not match the description of 2048") != std::string::npos, r.err);
}

BOOST_AUTO_TEST_CASE(output_files_are_complete_or_absent) {
  peft_test::TempDir dir;
  const std::string stdout_rows = run(kFixtures).out;

  // One file: the same bytes as standard output.
  BOOST_REQUIRE_EQUAL(run("--output " + quote(dir / "all.jsonl") + " " + kFixtures).status, 0);
  BOOST_CHECK_EQUAL(peft_test::read_file(dir / "all.jsonl"), stdout_rows);
  BOOST_CHECK((peft_test::fs::status(dir / "all.jsonl").permissions() & peft_test::fs::perms::others_read) !=
              peft_test::fs::perms::none);

  // A directory: one file per split, each line in its file's split, together the same rows.
  BOOST_REQUIRE_EQUAL(run("--output " + quote(dir / "splits/") + " " + kFixtures).status, 0);
  std::set<std::string> joined;
  for (const char* split : {"train", "validation", "test"}) {
    const path p = dir / "splits" / (std::string(split) + ".jsonl");
    BOOST_REQUIRE_MESSAGE(peft_test::fs::exists(p), p);
    for (const auto& row : parse_jsonl(peft_test::read_file(p))) {
      BOOST_CHECK_EQUAL(row.at("split"), split);
      joined.insert(row.dump());
    }
  }
  std::set<std::string> expected;
  for (const auto& row : parse_jsonl(stdout_rows)) expected.insert(row.dump());
  BOOST_CHECK(joined == expected);

  // A run with nothing usable leaves the old file as it was; no temporary file remains.
  peft_test::write_file(dir / "empty", "");
  BOOST_CHECK_EQUAL(run("--output " + quote(dir / "all.jsonl") + " " + quote(dir / "empty")).status, 1);
  BOOST_CHECK_EQUAL(peft_test::read_file(dir / "all.jsonl"), stdout_rows);
  // An output directory that does not exist: exit status 2, nothing written.
  BOOST_CHECK_EQUAL(run("--output " + quote(dir / "no" / "such" / "x.jsonl") + " " + kFixtures).status, 2);
  for (const auto& entry : peft_test::fs::recursive_directory_iterator(dir.path()))
    BOOST_CHECK_MESSAGE(entry.path().string().find(".tmp.") == std::string::npos, entry.path());
}
