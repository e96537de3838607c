#!/usr/bin/env python3
"""Writes the evaluation-metric fixtures with the reference Python packages (no torch).

    pip install jiwer==4.0.0 rouge-score more_itertools regex
    pip download --no-deps openai-whisper && tar xzf openai_whisper-*.tar.gz
    WHISPER_NORMALIZERS=openai_whisper-*/whisper/normalizers \
        python3 tests/reference/make_metrics_fixture.py

Outputs in tests/fixtures/metrics/:
  wer.json         jiwer.process_words (default transform) on single pairs and on small
                   corpora: hits, substitutions, deletions, insertions and WER. Includes the
                   five LibriVox transcripts of Debian's pocketsphinx-testdata against
                   faster-whisper-like hypotheses, repeated words, empty hypotheses and
                   empty references (jiwer 4.0.0 then reports the insertion count as "wer").
  normalizer.json  openai-whisper's EnglishTextNormalizer and BasicTextNormalizer (both
                   remove_diacritics settings) on varied strings. The normalizers package is
                   imported by file path, so whisper's torch-dependent __init__ never runs.
  rouge.json       rouge-score's RougeScorer(rouge1, rouge2, rougeL, rougeLsum) with and
                   without use_stemmer on text pairs, and nltk's PorterStemmer (the one
                   rouge-score's DefaultTokenizer builds: default NLTK_EXTENSIONS mode) on
                   words.
"""
import glob
import importlib.util
import json
import os
import random
import sys
import types

import jiwer
from nltk.stem import porter
from rouge_score import rouge_scorer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "metrics")
LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox/transcription"
CARDS = "/usr/share/pocketsphinx/test/data/cards/cards.transcription"


def load_whisper_normalizers():
    path = os.environ.get("WHISPER_NORMALIZERS")
    if not path:
        found = glob.glob("/tmp/ow/openai_whisper-*/whisper/normalizers")
        if not found:
            sys.exit("set WHISPER_NORMALIZERS to openai-whisper's whisper/normalizers folder")
        path = found[0]
    pkg = types.ModuleType("wnorm")
    pkg.__path__ = [path]
    sys.modules["wnorm"] = pkg
    mods = {}
    for name in ("basic", "english"):
        spec = importlib.util.spec_from_file_location("wnorm." + name, os.path.join(path, name + ".py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules["wnorm." + name] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    return mods["english"].EnglishTextNormalizer(), mods["basic"].BasicTextNormalizer


def transcripts(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(line.split("<s>")[1].split("</s>")[0].strip())
    return out


LIBRI = transcripts(LIBRIVOX)
CARD = transcripts(CARDS)
# What a small Whisper model plausibly writes for the LibriVox clips (cased, punctuated,
# with the kind of slips tiny.en makes).
LIBRI_HYP = [
    "And Mr. John Dashwood had then leisure to consider how much there might be prudently in his power to do for them.",
    "He was not an old-sposed young man.",
    "Unless to be rather cold-hearted and rather selfish is to be ill-disposed.",
    "Had he married a more amiable woman, he might have been made still more respectable than he was.",
    "He might even have been made amiable himself.",
]
CARD_HYP = ["10 of clubs.", "Four, Queen of Clubs.", "7 of clubs", "five, five.", "Eight of spades, four of clubs, seven of hearts."]


def word_counts(out):
    return {"hits": out.hits, "substitutions": out.substitutions, "deletions": out.deletions,
            "insertions": out.insertions, "wer": out.wer}


def make_wer():
    pairs = [
        ("the cat sat on the mat", "the cat sat on the mat"),
        ("the cat sat on the mat", "the cat sat on mat"),
        ("the cat sat on the mat", "the the cat sat on the mat mat"),
        ("the cat sat on the mat", ""),
        ("a b", "b c"),
        ("a a a a", "a a"),
        ("a a", "a a a a a"),
        ("one two three", "three two one"),
        ("hello world", "hello  world "),
        ("  leading and trailing  ", "leading and trailing"),
        ("x y z", "a b c d e f"),
        ("a b c d e f", "x"),
        ("the quick brown fox", "quick the brown fox"),
        ("a\tb c", "a b c"),
        ("caf\u00e9 na\u00efve", "cafe naive"),
        ("repeated repeated repeated words", "repeated words words words"),
        ("i do not know", "i don't know"),
        ("he said hello", "he he said said hello hello"),
    ]
    for r, h in zip(LIBRI, LIBRI_HYP):
        pairs.append((r, h))
        pairs.append((r, h.lower().replace(".", "").replace(",", "")))
    for r, h in zip(CARD, CARD_HYP):
        pairs.append((r, h))
    rnd = random.Random(7)
    vocab = "a b c d e the of".split()
    for _ in range(30):
        r = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(1, 12)))
        h = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(0, 12)))
        pairs.append((r, h))

    single = []
    for r, h in pairs:
        out = jiwer.process_words(r, h)
        single.append({"reference": r, "hypothesis": h, **word_counts(out)})

    corpora = []
    for refs, hyps in [(LIBRI, LIBRI_HYP), (LIBRI, [h.lower() for h in LIBRI_HYP]), (CARD, CARD_HYP),
                       (["a b c", "d e"], ["a b", ""]), (["", "a b"], ["x", "a b"])]:
        out = jiwer.process_words(refs, hyps)
        corpora.append({"references": refs, "hypotheses": hyps, **word_counts(out)})

    # jiwer 4.0.0 does not raise on an empty reference: "wer" is then the insertion count.
    empty = []
    for r, h in [("", ""), ("", "a b"), ("   ", "x")]:
        out = jiwer.process_words(r, h)
        empty.append({"reference": r, "hypothesis": h, **word_counts(out)})
    return {"pairs": single, "corpora": corpora, "empty_reference": empty}


NORMALIZER_TEXTS = [
    "Hello, World!",
    "He was not an old-sposed young man.",
    "And Mr. John Dashwood had then leisure to consider how much there might be prudently in his power to do for them.",
    "Had he married a more amiable woman, he might have been made still more respectable than he was.",
    "Unless to be rather cold-hearted and rather selfish is to be ill-disposed.",
    "Ten of clubs.", "Four, Queen of Clubs.", "Seven of clubs", "Five five.",
    "Eight of spades, four of clubs, seven of hearts.",
    "twenty one", "twenty-one", "one hundred and twenty three", "two thousand and nineteen",
    "nineteen eighty four", "one oh one", "double seven", "triple five nine",
    "three point one four", "seven and a half", "one and a half million dollars",
    "the first, second and third", "the twenty first century", "the 21st century", "the 1960s",
    "the nineteen sixties", "two hundredth", "ninety ninth", "one million two hundred thousand",
    "$20 million", "twenty dollars", "five pounds and fifty pence", "$2 and 7 cents",
    "two dollars and seven cents", "fifty cents", "ten percent", "ten per cent", "10%",
    "minus five degrees", "plus two", "1,000,000 people", "3.5 and 4.25", "ip 192.168.0.1",
    "it is 5 o'clock", "one thing or ones", "I won't, can't, and shouldn't.", "Let's go, y'all.",
    "I'm gonna wanna gotta", "She's been there; he'd gone; they've done it.", "Dr. Smith and Mrs. Jones met St. Paul",
    "Prof. X, Capt. Y, Gen. Z, Jr. and Sr.", "Ma'am, it ain't so.",
    "[MUSIC] hello (laughs) world <noise>", "um, uh, hmm, I mean mhm",
    "The colour of the theatre's centre is grey.", "We organised the catalogue and analysed it.",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00e6sthetic \u0153uvre \u00f8re",
    "Hyphen-ated words and -- dashes \u2014 em dash", "Wait... what?!", "\u201cQuoted\u201d text, \u2018single\u2019 too",
    "  multiple   spaces\tand\ttabs\nnewline  ", "", "I'll be back at 10:30 p.m.", "it's 3.00 dollars",
    "zero zero seven", "oh no", "one", "ones and twos", "Mister O'Neil's book", "\u00bd and \u00bc and x\u00b2",
    "\u2160 \u2161 \u2162", "\uff21\uff22\uff23 full width", "bad \xff byte",
]


def make_normalizer():
    english, basic_cls = load_whisper_normalizers()
    basic = basic_cls()
    basic_d = basic_cls(remove_diacritics=True)
    return {
        "english": [{"input": t, "output": english(t)} for t in NORMALIZER_TEXTS],
        "basic": [{"input": t, "output": basic(t), "output_remove_diacritics": basic_d(t)}
                  for t in NORMALIZER_TEXTS],
    }


ROUGE_PAIRS = [
    ("The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log."),
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("the cat sat on the mat", "a dog lay under a rug"),
    ("", "something"), ("something", ""), ("", ""),
    ("a", "a"), ("a b", "b a"), ("the the the the", "the the"), ("a a b b a a", "a b a b a b"),
    ("Police killed the gunman.", "The gunman was shot down by police."),
    ("Running runners ran quickly; generalizations are relational.", "The runner runs quick, generally relating."),
    ("Привет, как дела? Всё хорошо.", "Привет мир"),
    ("Привет мир hello", "hello world"),
    ("我们今天去公园散步。", "我们今天去公园"),
    ("It's 3:45 pm -- the U.S.A. won 2-1!", "its 345 pm the usa won 21"),
    ("first sentence here.\nsecond sentence there.\nthird one.", "second sentence here.\nfirst sentence there."),
    ("one two three\nfour five six", "one two three four five six"),
    ("a b c d\ne f g h\n\ni j", "a c e g i\nb d f h j"),
    ("w1 w2 w3 w4 w5\nw1 w2", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5"),
    ("\n\n", "text\n"), ("the cat\nthe cat\nthe cat", "the cat the cat"),
    ("Hopefulness and happiness are conditional.", "hopeful happy conditions"),
    ("The Générale société's café opened.", "the generale societe s cafe opened"),
    ("KÖNIG İstanbul \u212aelvin", "konig istanbul kelvin"),
]
ROUGE_SENTENCES = [
    "the committee approved the new budget after a long debate",
    "heavy rain caused flooding across several northern towns",
    "researchers discovered a new species of frog in the rainforest",
    "the company reported higher profits for the third quarter",
    "students protested against rising tuition fees on monday",
]


def make_rouge():
    rnd = random.Random(11)
    pairs = list(ROUGE_PAIRS)
    for _ in range(25):
        ref = [rnd.choice(ROUGE_SENTENCES) for _ in range(rnd.randint(1, 3))]
        pred = []
        for s in ref:
            words = s.split()
            if rnd.random() < 0.5:
                rnd.shuffle(words)
            words = [w for w in words if rnd.random() > 0.25]
            if rnd.random() < 0.5:
                words.insert(rnd.randint(0, len(words)), rnd.choice(["the", "new", "said", "reports"]))
            pred.append(" ".join(words))
        sep = "\n" if rnd.random() < 0.7 else " "
        pairs.append(("\n".join(ref), sep.join(pred)))
    types_ = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    out = []
    for stem in (False, True):
        scorer = rouge_scorer.RougeScorer(types_, use_stemmer=stem)
        for target, prediction in pairs:
            s = scorer.score(target, prediction)
            out.append({"target": target, "prediction": prediction, "use_stemmer": stem,
                        "scores": {t: [s[t].precision, s[t].recall, s[t].fmeasure] for t in types_}})
    stemmer = porter.PorterStemmer()
    words = set()
    for text in ROUGE_SENTENCES + [t for p in ROUGE_PAIRS for t in p] + LIBRI:
        words.update(w for w in text.lower().split() if w.isascii() and w.isalpha())
    words.update(STEM_WORDS.split())
    stems = [[w, stemmer.stem(w)] for w in sorted(words)]
    return {"pairs": out, "stems": stems}


STEM_WORDS = """
caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled
sized hopping tanned falling hissing fizzed failing filing happy sky relational conditional
rational valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli
vietnamization predication operator feudalism decisiveness hopefulness callousness formaliti
sensitiviti sensibiliti triplicate formative formalize electriciti electrical hopeful goodness
revival allowance inference airliner gyroscopic adjustable defensible irritant replacement
adjustment dependent adoption homologou communism activate angulariti homologous effective
bowdlerize probate rate cease controll roll skies dying lying tying news innings outings
cannings howe proceed exceed succeed spied tried flies died lies enjoy enjoyment generalizations
generously running runners ran quickly relating conditions happiness abilities ability
syzygy toy yoyo yelling boyish playing obeyed studies studying agreement agreeable
fully beautifully hopefully analogically logically geology biology archaeology sensational
organization organizational nationalism rationalize traditionally radically possibly
capability responsibility dryness emptiness fitness business witness sadness kindness
international misunderstanding unbelievable irresponsibility electrification classification
identification justification simplification generalize generalization meeting meetings
feet teeth geese mice oxen went going gone goes argued arguing argues argument
national nation nationality nationalities hopping hoped hoping hope hopes filed files
sitting sitter sits sat sip sipping sipped ed ing eed seed seeds bleed bleeding need needed
yes yesterday eye eyes dye dyeing dying ayes ays
""".split()
STEM_WORDS = " ".join(STEM_WORDS)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in (("wer", make_wer()), ("normalizer", make_normalizer()), ("rouge", make_rouge())):
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump({"source": "tests/reference/make_metrics_fixture.py", **data}, f,
                      ensure_ascii=False, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
