// Deterministic test strings for the tokenizer parity test: hand-picked edge cases plus seeded random
// mixtures of scripts (Latin, CJK, Arabic, Hebrew, Devanagari, Thai, Hangul, Cyrillic, Greek),
// emoji (ZWJ sequences, flags, skin tones, keycaps), code, digits, whitespace runs, control
// characters, rare code points (astral planes, private use) and added-token text embedded in text
// (also near misses such as "<start_of_tur"). Only well-formed strings: lone surrogates cannot go
// through UTF-8 and are never generated.

// mulberry32: a small seeded PRNG, so every run sees the same strings.
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (list) => list[Math.floor(next() * list.length)],
    range: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
  };
}

const WORDS = (
  "the of and to in is that for it as with was on be by this are at from or have not but which one you all " +
  "they we were there can more has been had if when will so what their model token gemma layer weight " +
  "attention expert hello world Tokenizer Hello WORLD naïve café résumé façade jalapeño Zürich Øresund " +
  "São Paulo Kraków İstanbul straße œuvre déjà vu coöperate piñata"
).split(" ");
const CJK = "東京 日本語 中文 汉字 漢字 你好 世界 こんにちは カタカナ ひらがな 한국어 안녕하세요 서울 北京大学 機械学習 人工知能".split(" ");
const OTHER_SCRIPTS = [
  "مرحبا بالعالم", "العربية", "السَّلَامُ عَلَيْكُمْ", "שלום עולם", "עִבְרִית", "नमस्ते दुनिया", "हिन्दी", "สวัสดีชาวโลก",
  "ภาษาไทย", "Привет, мир", "Ελληνικά γράμματα", "Քարեւ", "გამარჯობა", "ሰላም", "ᠮᠣᠩᠭᠣᠯ", "ᚠᚢᚦᚨᚱᚲ", "𐌰𐌱𐌲",
];
const EMOJI = [
  "😀", "😂", "🥲", "👍", "👍🏽", "👋🏿", "❤️", "❤", "🔥", "🚀", "🇺🇸", "🇯🇵", "🇪🇺", "🏳️‍🌈", "🏴‍☠️",
  "👨‍👩‍👧‍👦", "👩‍❤️‍💋‍👨", "🧑‍💻", "👩🏽‍🔬", "🤷‍♀️", "1️⃣", "#️⃣", "©️", "™", "🫠", "🪿", "🧬", "☕", "⚡",
  "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
];
const CODE = [
  "def f(x):\n    return x * 2\n",
  "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
  "const x = await fetch(`/api/${id}`);",
  '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}',
  "<div class=\"main\"><p>Hello &amp; welcome</p></div>",
  "SELECT * FROM users WHERE id = 42 AND name LIKE '%a%';",
  "#include <vector>\nint main() { std::vector<int> v{1,2,3}; }",
  "x = [i**2 for i in range(10) if i % 2 == 0]",
  "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
  "$ git commit -m \"fix: tokenizer\" && make -j2",
  "    if (a != b) return -1;  // comment\r\n",
  "λx.λy.x ∘ y ≠ ∅ ∀x∈ℝ: x² ≥ 0 ∫₀^∞ e^{-x} dx = 1",
  "```python\nprint('hi')\n```",
];
const SPACES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009", "\u200b", "\f", "\v"];
const PUNCT = [".", ",", "!", "?", ";", ":", "...", "—", "–", "-", "'", "\"", "«", "»", "“", "”", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "@", "#", "$", "%", "^", "&", "*", "_", "=", "+", "|", "~", "`"];
const NEAR_MISSES = [
  "<start_of_tur", "start_of_turn>", "<bos", "bos>", "<<bos>>", "<unused99999>", "<unused-1>", "< bos>", "<BOS>",
  "<0x41>", "<0xZZ>", "<0x0A>", "[multimodal", "<eos ", "<end_of_turn", "<|turn>", "<turn|>", "<|think|>",
  "<pad><pad>", "<mask>", "</s>", "<s>", "<unk>",
];

// Code point ranges for random "soup" strings (no surrogates).
const RANGES = [
  [0x20, 0x7e], [0x20, 0x7e], [0x00, 0x1f], [0x7f, 0x9f], [0xa0, 0xff], [0x100, 0x24f], [0x300, 0x36f],
  [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f],
  [0x1100, 0x11ff], [0x2000, 0x206f], [0x2070, 0x209f], [0x20a0, 0x20cf], [0x2100, 0x214f], [0x2190, 0x21ff],
  [0x2200, 0x22ff], [0x2500, 0x257f], [0x2580, 0x259f], [0x25a0, 0x25ff], [0x2600, 0x27bf], [0x3000, 0x303f],
  [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xf8ff], [0xf900, 0xfaff], [0xfe00, 0xfe0f],
  [0xfe30, 0xfe4f], [0xff00, 0xffef], [0xfff0, 0xfffd], [0x10000, 0x1007f], [0x10300, 0x1034f],
  [0x1d400, 0x1d7ff], [0x1f000, 0x1f0ff], [0x1f300, 0x1faff], [0x20000, 0x2a6df], [0x2f800, 0x2fa1f],
  [0xe0000, 0xe007f], [0xf0000, 0xffffd], [0x100000, 0x10fffd],
];

function soup(r, length) {
  let s = "";
  for (let i = 0; i < length; ++i) {
    const [lo, hi] = r.pick(RANGES);
    s += String.fromCodePoint(r.range(lo, hi));
  }
  return s;
}

function digits(r) {
  const kinds = [
    () => String(r.int(1e9)),
    () => "9".repeat(r.range(1, 40)),
    () => `${r.int(1000)}.${r.int(100000)}`,
    () => `+1 (${r.range(100, 999)}) ${r.range(100, 999)}-${r.range(1000, 9999)}`,
    () => `${r.range(1900, 2100)}-${String(r.range(1, 12)).padStart(2, "0")}-${String(r.range(1, 28)).padStart(2, "0")}`,
    () => "0x" + r.int(0xffffffff).toString(16).toUpperCase(),
    () => "１２３４５",  // full-width digits
    () => "٠١٢٣٤٥٦٧٨٩",  // Arabic-Indic digits
    () => `${r.int(100)}%`,
    () => Array.from({ length: r.range(2, 12) }, () => r.int(10)).join(" "),
  ];
  return r.pick(kinds)();
}

// One random piece of a mixed sentence.
function piece(r, addedTokens) {
  const k = r.int(100);
  if (k < 38) return r.pick(WORDS);
  if (k < 46) return r.pick(CJK);
  if (k < 52) return r.pick(OTHER_SCRIPTS);
  if (k < 58) return r.pick(EMOJI);
  if (k < 66) return r.pick(PUNCT);
  if (k < 72) return digits(r);
  if (k < 76) return r.pick(CODE);
  if (k < 80) return soup(r, r.range(1, 4));
  if (k < 84) return r.pick(NEAR_MISSES);
  if (k < 88) return r.pick(addedTokens);
  return r.pick(SPACES);
}

function sentence(r, addedTokens, pieces) {
  let s = "";
  for (let i = 0; i < pieces; ++i) {
    s += piece(r, addedTokens);
    if (r.next() < 0.7) s += r.next() < 0.85 ? " " : r.pick(SPACES);
  }
  return s;
}

const FIXED = [
  "", " ", "  ", "     ", "\t", "\n", "\r\n", "\n\n\n\n", " \t \n ", "a", "A", "é", "😀", "👨‍👩‍👧‍👦",
  "hello world", " hello world", "hello world ", "Hello, my dog is cute", "  leading and trailing  ",
  "<bos>", "<bos>hello", "<bos><bos>hello", " <bos>hello", "hello<bos>", "<eos>", "<pad>", "<unk>",
  "<start_of_turn>user\nHi there!<end_of_turn>\n<start_of_turn>model\n",
  "<bos><start_of_turn>user\nWrite a poem.<end_of_turn>\n<start_of_turn>model\n",
  "<unused0><unused1><unused6241>", "[multimodal]", "<start_of_image><image_soft_token><end_of_image>",
  "<0x41>", "<0x0A>", "\u2581", "\u2581\u2581hello", "a\u2581b c",
  "\u0000", "\u0000\u0001\u001f", "\u007f", "\ufeffBOM", "\ufffd", "\u00a0\u00a0", "\u200b\u200c\u200d",
  "e\u0301", "n\u0303", "\u0041\u030a", "ﬁ ﬂ ﬀ", "Ａ Ｂ Ｃ", "ｶﾀｶﾅ",
  "\u{10ffff}", "\u{e0001}", "\u{1f9d1}\u{200d}\u{1f91d}\u{200d}\u{1f9d1}", "🇦🇧🇨", "🏻", "\u200d",
  "日本語のテキストと English の混在", "混合 mixed 混合", "مرحبا123abc", "RTL \u202eevil\u202c text",
  "a".repeat(1000), " ".repeat(500), "\n".repeat(100), "\t".repeat(64), "ab".repeat(300),
  "😀".repeat(50), "東".repeat(200), "<bos>".repeat(10), "<".repeat(30), ">".repeat(30),
];

// count: total number of strings (at least the fixed ones); addedTokens: the tokenizer's added tokens.
export function buildCorpus({ count, addedTokens }) {
  const r = rng(20250607);
  const out = [...FIXED];
  const generators = [
    () => sentence(r, addedTokens, r.range(1, 12)),                // short mixed sentences
    () => sentence(r, addedTokens, r.range(12, 60)),               // longer mixed text
    () => soup(r, r.range(1, 24)),                                 // random code points
    () => Array.from({ length: r.range(1, 6) }, () => r.pick(EMOJI)).join(r.pick(["", " ", "\u200d"])),
    () => r.pick(CODE) + r.pick(SPACES) + r.pick(CODE),
    () => r.pick(SPACES).repeat(r.range(1, 20)) + r.pick(WORDS) + r.pick(SPACES).repeat(r.range(1, 20)),
    () => digits(r) + r.pick([" ", "", ", "]) + digits(r),
    () => r.pick(addedTokens) + sentence(r, addedTokens, r.range(1, 5)) + r.pick(addedTokens),
  ];
  while (out.length < count - 10) out.push(r.pick(generators)());
  // A few long texts (5-50 KB): Gemma does not pre-split, so these are single long BPE words.
  while (out.length < count) out.push(sentence(r, addedTokens, r.range(1000, 8000)));
  return out;
}

// Random token id sequences (for decode-only checks).
export function randomIdSequences({ count, vocabSize, seed }) {
  const r = rng(seed);
  return Array.from({ length: count }, () => Array.from({ length: r.range(1, 40) }, () => r.int(vocabSize)));
}
