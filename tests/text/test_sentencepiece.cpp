// SentencePiece tokenization against sentencepiece 0.2.3 on small models trained with it
// (fixtures by tests/reference/make_sentencepiece_fixture.py): unigram with the nmt_nfkc
// charsmap and T5's special ids, BPE with a custom charsmap, unigram with byte fallback
// and user-defined symbols, BPE with whitespace as suffix. Then corrupt, truncated and
// hand-made model files, which must give FormatError and never crash.
#define BOOST_TEST_MODULE sentencepiece
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/text/sentencepiece_hf_unigram.h"
#include "peft/text/sentencepiece_model.h"
#include "peft/text/sentencepiece_tokenizer.h"
#include "test_support.h"

using namespace peft::text;
using peft_test::fixtures_dir;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kModels = {"unigram_nmt", "bpe", "unigram_bytes", "unigram_rules",
                                          "bpe_suffix"};

fs::path sp_dir() { return fixtures_dir() / "text" / "sentencepiece"; }

const nlohmann::json& reference() {
  static const nlohmann::json ref = [] {
    std::ifstream f(sp_dir() / "reference.json");
    BOOST_REQUIRE_MESSAGE(f.good(), "fixture text/sentencepiece/reference.json missing");
    return nlohmann::json::parse(f);
  }();
  return ref;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::string case_text(const nlohmann::json& c) {
  return c.contains("bytes_hex") ? from_hex(c["bytes_hex"].get<std::string>()) : c["text"].get<std::string>();
}

std::string show(const std::string& s) {
  std::string out;
  for (const unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

template <class T>
std::string join(const std::vector<T>& v) {
  std::ostringstream s;
  for (const auto& x : v) s << "[" << x << "]";
  return show(s.str());
}

// Protobuf wire-format writers for hand-made models.
std::string varint(uint64_t v) {
  std::string out;
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    if (v) b |= 0x80;
    out += static_cast<char>(b);
  } while (v);
  return out;
}
std::string field_varint(uint32_t field, uint64_t v) { return varint(uint64_t{field} << 3 | 0) + varint(v); }
std::string field_bytes(uint32_t field, const std::string& b) {
  return varint(uint64_t{field} << 3 | 2) + varint(b.size()) + b;
}
std::string field_float(uint32_t field, float f) {
  std::string out = varint(uint64_t{field} << 3 | 5);
  peft_test::put(out, f);
  return out;
}
std::string piece_msg(const std::string& piece, float score, int type) {
  return field_bytes(
      1, field_bytes(1, piece) + field_float(2, score) + field_varint(3, static_cast<uint64_t>(type)));
}

// A tiny BPE model: <unk>, a, b, ab, and whatever `extra` adds.
std::string tiny_model(const std::string& extra_pieces = "", const std::string& extra_trainer = "") {
  std::string m =
      piece_msg("<unk>", 0, 2) + piece_msg("a", -1, 1) + piece_msg("b", -2, 1) + piece_msg("ab", -0.5f, 1);
  m += extra_pieces;
  m += field_bytes(2, field_varint(3, 2) + extra_trainer);  // trainer_spec.model_type = BPE
  m += field_bytes(3, field_varint(3, 0));                  // normalizer_spec.add_dummy_prefix = false
  return m;
}

SentencePieceTokenizer from_bytes(const std::string& bytes) {
  return SentencePieceTokenizer(
      parse_sentencepiece_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "tiny.model"),
      "tiny.model");
}

}  // namespace

BOOST_AUTO_TEST_CASE(vocabularies_and_special_ids) {
  BOOST_TEST_MESSAGE("fixtures made by sentencepiece " << reference()["sentencepiece_version"]);
  for (const auto& name : kModels) {
    const auto& ref = reference()["models"][name];
    const auto tok = SentencePieceTokenizer::load(sp_dir() / ref["file"].get<std::string>());
    BOOST_TEST_CONTEXT(name) {
      BOOST_CHECK_EQUAL(tok.vocab_size(), ref["vocab_size"].get<int64_t>());
      BOOST_CHECK_EQUAL(tok.unk_id(), ref["unk_id"].get<int64_t>());
      BOOST_CHECK_EQUAL(tok.bos_id(), ref["bos_id"].get<int64_t>());
      BOOST_CHECK_EQUAL(tok.eos_id(), ref["eos_id"].get<int64_t>());
      BOOST_CHECK_EQUAL(tok.pad_id(), ref["pad_id"].get<int64_t>());
      const auto pieces = ref["pieces"].get<std::vector<std::string>>();
      const auto types = ref["types"].get<std::string>();
      BOOST_REQUIRE_EQUAL(pieces.size(), static_cast<size_t>(tok.vocab_size()));
      size_t mismatches = 0;
      for (size_t i = 0; i < pieces.size(); ++i) {
        const auto id = static_cast<int64_t>(i);
        if (tok.piece(id) != pieces[i] || tok.id_of(pieces[i]) != id) ++mismatches;
        char t = 'N';
        switch (tok.type(id)) {
          case SentencePieceType::kUnknown:
            t = 'U';
            break;
          case SentencePieceType::kControl:
            t = 'C';
            break;
          case SentencePieceType::kByte:
            t = 'B';
            break;
          case SentencePieceType::kUnused:
            t = 'X';
            break;
          default:
            break;
        }
        if (t != types[i]) ++mismatches;
      }
      BOOST_CHECK_EQUAL(mismatches, 0u);
      const auto scores = ref["scores_head"].get<std::vector<float>>();
      for (size_t i = 0; i < scores.size(); ++i)
        BOOST_CHECK_EQUAL(tok.score(static_cast<int64_t>(i)), scores[i]);
      BOOST_CHECK(!tok.id_of("no such piece"));
      BOOST_CHECK_THROW(tok.piece(tok.vocab_size()), peft::ValueError);
      BOOST_CHECK_THROW(tok.piece(-1), peft::ValueError);
    }
  }
  const auto t5 = SentencePieceTokenizer::load(sp_dir() / "unigram_nmt.model");
  BOOST_CHECK(t5.trainer_spec().model_type == SentencePieceTrainerSpec::ModelType::kUnigram);
  BOOST_CHECK_EQUAL(t5.normalizer_spec().name, "nmt_nfkc");
  BOOST_CHECK_EQUAL(t5.pad_id(), 0);
  BOOST_CHECK_EQUAL(t5.eos_id(), 1);
  BOOST_CHECK_EQUAL(t5.unk_id(), 2);
  const auto bpe = SentencePieceTokenizer::load(sp_dir() / "bpe.model");
  BOOST_CHECK(bpe.trainer_spec().model_type == SentencePieceTrainerSpec::ModelType::kBpe);
}

BOOST_AUTO_TEST_CASE(encode_and_decode_match_sentencepiece) {
  for (const auto& name : kModels) {
    const auto& ref = reference()["models"][name];
    const auto tok = SentencePieceTokenizer::load(sp_dir() / ref["file"].get<std::string>());
    size_t checked = 0;
    for (const auto& c : ref["encode"]) {
      const std::string text = case_text(c);
      BOOST_TEST_CONTEXT(name << " \"" << show(text) << "\"") {
        if (c.contains("normalized")) BOOST_CHECK_EQUAL(show(tok.normalize(text)), show(c["normalized"]));
        const auto ids = tok.encode(text);
        const auto want_ids = c["ids"].get<std::vector<int64_t>>();
        BOOST_CHECK_EQUAL(join(ids), join(want_ids));
        BOOST_CHECK_EQUAL(join(tok.encode_pieces(text)), join(c["pieces"].get<std::vector<std::string>>()));
        BOOST_CHECK_EQUAL(show(tok.decode(want_ids)), show(c["decoded"]));
        ++checked;
      }
    }
    BOOST_CHECK_GE(checked, 60u);
  }
}

BOOST_AUTO_TEST_CASE(decode_of_id_lists_matches_sentencepiece) {
  for (const auto& name : kModels) {
    const auto& ref = reference()["models"][name];
    const auto tok = SentencePieceTokenizer::load(sp_dir() / ref["file"].get<std::string>());
    for (const auto& c : ref["decode"]) {
      const auto ids = c["ids"].get<std::vector<int64_t>>();
      BOOST_TEST_CONTEXT(name << " " << join(ids)) {
        BOOST_CHECK_EQUAL(show(tok.decode(ids)), show(c["decoded"]));
      }
    }
    PEFT_CHECK_THROW_MSG(tok.decode({0, tok.vocab_size()}), peft::ValueError,
                         {ref["file"].get<std::string>(), std::to_string(tok.vocab_size())});
    BOOST_CHECK_THROW(tok.decode({-1}), peft::ValueError);
  }
}

BOOST_AUTO_TEST_CASE(concurrent_encoding_gives_the_same_ids) {
  const auto tok = SentencePieceTokenizer::load(sp_dir() / "unigram_nmt.model");
  std::vector<std::string> texts;
  for (const auto& c : reference()["models"]["unigram_nmt"]["encode"]) texts.push_back(case_text(c));
  std::vector<std::vector<int64_t>> expected;
  for (const auto& t : texts) expected.push_back(tok.encode(t));
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < texts.size(); ++i)
          if (tok.encode(texts[i]) != expected[i] || tok.decode(expected[i]).size() > 100000) ++failures[t];
    });
  for (auto& th : threads) th.join();
  for (int f : failures) BOOST_CHECK_EQUAL(f, 0);
}

BOOST_AUTO_TEST_CASE(missing_file_is_an_io_error) {
  PEFT_CHECK_THROW_MSG(SentencePieceTokenizer::load(sp_dir() / "absent.model"), peft::IoError,
                       {"absent.model", "cannot open"});
}

BOOST_AUTO_TEST_CASE(hand_made_models) {
  const auto tok = from_bytes(tiny_model());
  BOOST_CHECK_EQUAL(join(tok.encode_pieces("abba")), "[ab][b][a]");
  BOOST_CHECK_EQUAL(join(tok.encode("abba c")),
                    "[3][2][1][0]");  // " c": one <unk> (space is not escaped here)
  BOOST_CHECK_EQUAL(tok.bos_id(), -1);

  // Unknown fields of every wire type are skipped.
  const std::string unknown = field_varint(99, 5) + field_bytes(98, "xyz") + varint(97 << 3 | 5) + "abcd" +
                              varint(96 << 3 | 1) + "12345678";
  BOOST_CHECK_EQUAL(join(from_bytes(unknown + tiny_model() + unknown).encode("ab")), "[3]");

  PEFT_CHECK_THROW_MSG(from_bytes(tiny_model(piece_msg("ab", -3, 1))), peft::FormatError,
                       {"tiny.model", "pieces[4]", "already defined"});
  PEFT_CHECK_THROW_MSG(from_bytes(tiny_model(piece_msg("<unk2>", 0, 2))), peft::FormatError,
                       {"tiny.model", "pieces[4]", "unknown"});
  PEFT_CHECK_THROW_MSG(from_bytes(tiny_model(piece_msg("", 0, 1))), peft::FormatError,
                       {"pieces[4]", "empty"});
  PEFT_CHECK_THROW_MSG(from_bytes(tiny_model(piece_msg("<0x41>", 0, 6))), peft::FormatError,
                       {"pieces[4]", "byte_fallback"});
  PEFT_CHECK_THROW_MSG(from_bytes(tiny_model(piece_msg("<0x41>", 0, 6), field_varint(35, 1))),
                       peft::FormatError, {"256 byte pieces"});
  PEFT_CHECK_THROW_MSG(from_bytes(tiny_model(piece_msg("x", 0, 9))), peft::FormatError,
                       {"pieces[4].type", "unknown piece type 9"});
  PEFT_CHECK_THROW_MSG(from_bytes(tiny_model("", field_varint(3, 3))), peft::FormatError,
                       {"model_type", "WORD", "not supported"});
  PEFT_CHECK_THROW_MSG(from_bytes(piece_msg("a", 0, 1)), peft::FormatError, {"no unknown"});
  PEFT_CHECK_THROW_MSG(from_bytes(""), peft::FormatError, {"no unknown"});
  // A string field sent as a varint, a group, a length past the end, a varint of 11 bytes.
  PEFT_CHECK_THROW_MSG(from_bytes(field_varint(1, 5)), peft::FormatError, {"pieces", "wire type varint"});
  PEFT_CHECK_THROW_MSG(from_bytes(varint(1 << 3 | 3)), peft::FormatError, {"start-group"});
  PEFT_CHECK_THROW_MSG(from_bytes(varint(1 << 3 | 2) + varint(1000) + "abc"), peft::FormatError,
                       {"pieces length at offset 0", "runs past the end"});
  PEFT_CHECK_THROW_MSG(from_bytes(field_bytes(2, varint(4 << 3) + std::string(10, '\xff') + "\x01")),
                       peft::FormatError, {"trainer_spec.vocab_size", "varint"});
  // Charsmaps whose trie does not fit the blob.
  std::string blob;
  peft_test::put<uint32_t>(blob, 64);
  blob += std::string(16, '\0');
  PEFT_CHECK_THROW_MSG(from_bytes(tiny_model() + field_bytes(3, field_bytes(2, blob))), peft::FormatError,
                       {"normalizer_spec.precompiled_charsmap", "trie size 64"});
  PEFT_CHECK_THROW_MSG(from_bytes(tiny_model() + field_bytes(3, field_bytes(2, "abc"))), peft::FormatError,
                       {"precompiled_charsmap", "too short"});
}

// Truncations and random byte flips: FormatError or a model that still encodes and
// decodes; anything else fails (and under AddressSanitizer, any out-of-bounds read).
BOOST_AUTO_TEST_CASE(corrupt_and_truncated_files_never_crash) {
  std::mt19937 rng(1234);
  for (const auto& name : kModels) {
    const std::string bytes = peft_test::read_file(sp_dir() / (name + ".model"));
    const bool big = bytes.size() > 100000;
    const auto try_load = [&](const std::string& data, int& errors, int& loaded) {
      try {
        const auto tok = from_bytes(data);
        ++loaded;
        for (const char* text :
             {"Hello world, free software!", " \t ＡＢＣ ﬁ ① café 日本 😀 ", "\xff\xe6\x88"}) {
          const auto ids = tok.encode(text);
          tok.encode_pieces(text);
          tok.decode(ids);
        }
      } catch (const peft::FormatError& e) {
        ++errors;
        BOOST_CHECK_MESSAGE(std::string(e.what()).find("tiny.model") == 0, e.what());
      }
    };
    int cut_errors = 0, cut_loaded = 0;
    // Every cut in the first piece entries, then a few hundred spread over the file.
    const size_t step = bytes.size() / (big ? 100 : 600);
    for (size_t cut = 0; cut < bytes.size(); cut += cut < 64 ? 1 : step)
      try_load(bytes.substr(0, cut), cut_errors, cut_loaded);
    // Cuts between two pieces leave a valid, shorter model; every other cut is an error.
    BOOST_TEST_MESSAGE(name << ": " << cut_errors << " truncations rejected, " << cut_loaded << " loaded");
    BOOST_CHECK_GT(cut_errors, 9 * cut_loaded);

    int flip_errors = 0, flip_loaded = 0;
    const int flips = big ? 40 : 400;
    for (int i = 0; i < flips; ++i) {
      std::string data = bytes;
      const int n = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n; ++k) data[rng() % data.size()] = static_cast<char>(rng() & 0xFF);
      try_load(data, flip_errors, flip_loaded);
    }
    BOOST_TEST_MESSAGE(name << ": " << flip_errors << " flipped files rejected, " << flip_loaded
                            << " loaded");
    BOOST_CHECK_GT(flip_errors, 0);
  }
}

BOOST_AUTO_TEST_CASE(truncation_names_file_field_and_offset) {
  const auto path = sp_dir() / "bpe_suffix.model";
  const std::string bytes = peft_test::read_file(path);
  peft_test::TempDir dir;
  const auto cut = dir / "cut.model";
  peft_test::write_file(cut, bytes.substr(0, bytes.size() - 3));  // inside normalizer_spec
  PEFT_CHECK_THROW_MSG(SentencePieceTokenizer::load(cut), peft::FormatError, {"cut.model", "at offset"});
  peft_test::write_file(cut, bytes.substr(0, 10));  // inside the first piece
  PEFT_CHECK_THROW_MSG(SentencePieceTokenizer::load(cut), peft::FormatError,
                       {"cut.model", "pieces", "offset 0"});
}

// transformers' T5TokenizerFast conversion of unigram_rules.model, run as tokenizers runs
// a tokenizer.json (which differs from sentencepiece on added tokens typed in the text,
// multi-character charsmap rules, literal "▁"...).
BOOST_AUTO_TEST_CASE(hf_tokenizer_json_matches_tokenizers) {
  const auto& ref = reference()["hf_t5"];
  const auto tok = HfUnigramTokenizer::load(sp_dir() / "t5_tokenizer" / "tokenizer.json");
  const auto spm = SentencePieceTokenizer::load(sp_dir() / "unigram_rules.model");
  BOOST_CHECK_EQUAL(tok.vocab_size(), spm.vocab_size());
  BOOST_CHECK(tok.unk_id() == spm.unk_id());
  size_t same_as_spm = 0, checked = 0;
  for (const auto& c : ref["encode"]) {
    const std::string text = c["text"];
    BOOST_TEST_CONTEXT("\"" << show(text) << "\"") {
      const auto ids = tok.encode(text);
      BOOST_CHECK_EQUAL(join(ids), join(c["ids"].get<std::vector<int64_t>>()));
      BOOST_CHECK_EQUAL(join(tok.encode_tokens(text)), join(c["tokens"].get<std::vector<std::string>>()));
      BOOST_CHECK_EQUAL(show(tok.decode(ids)), show(c["decoded"]));
      BOOST_CHECK_EQUAL(show(tok.decode(ids, false)), show(c["decoded_special"]));
      same_as_spm += ids == spm.encode(text);
      ++checked;
    }
  }
  BOOST_TEST_MESSAGE("tokenizer.json: " << same_as_spm << " of " << checked
                                        << " strings give sentencepiece's ids");
  BOOST_CHECK_GE(checked, 60u);
  for (const auto& c : ref["decode"]) {
    const auto ids = c["ids"].get<std::vector<int64_t>>();
    BOOST_TEST_CONTEXT(join(ids)) {
      BOOST_CHECK_EQUAL(show(tok.decode(ids)), show(c["decoded"]));
      BOOST_CHECK_EQUAL(show(tok.decode(ids, false)), show(c["decoded_special"]));
    }
  }
}

BOOST_AUTO_TEST_CASE(hf_tokenizer_json_outside_the_converters_shapes_is_refused) {
  PEFT_CHECK_THROW_MSG(HfUnigramTokenizer::load(fixtures_dir() / "io" / "hf" / "tokenizer.json"),
                       peft::FormatError, {"tokenizer.json", "normalizer", "NFKC", "not supported"});
  PEFT_CHECK_THROW_MSG(
      HfUnigramTokenizer::load(fixtures_dir() / "text" / "multilingual_mini" / "tokenizer.json"),
      peft::FormatError, {"model.type", "expected a Unigram model"});
  auto j = nlohmann::json::parse(peft_test::read_file(sp_dir() / "t5_tokenizer" / "tokenizer.json"));
  peft_test::TempDir dir;
  const auto write = [&](const nlohmann::json& doc) {
    peft_test::write_file(dir / "tokenizer.json", doc.dump());
    return dir / "tokenizer.json";
  };
  auto bad = j;
  bad["normalizer"]["normalizers"][0]["precompiled_charsmap"] = "not*base64";
  PEFT_CHECK_THROW_MSG(HfUnigramTokenizer::load(write(bad)), peft::FormatError,
                       {"normalizer.normalizers[0].precompiled_charsmap", "base64"});
  bad = j;
  bad["normalizer"]["normalizers"][0]["precompiled_charsmap"] = "AAAA";
  PEFT_CHECK_THROW_MSG(HfUnigramTokenizer::load(write(bad)), peft::FormatError,
                       {"precompiled_charsmap", "short"});
  bad = j;
  bad["added_tokens"][1]["single_word"] = true;
  PEFT_CHECK_THROW_MSG(HfUnigramTokenizer::load(write(bad)), peft::FormatError,
                       {"added_tokens[1]", "single_word"});
  bad = j;
  bad["pre_tokenizer"]["prepend_scheme"] = "sometimes";
  PEFT_CHECK_THROW_MSG(HfUnigramTokenizer::load(write(bad)), peft::FormatError,
                       {"prepend_scheme", "sometimes"});
}
