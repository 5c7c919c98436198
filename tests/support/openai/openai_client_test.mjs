// Drives a running `shardlm serve` through the official OpenAI Node.js client (the npm package
// `openai`, unmodified, from node_modules next to this file): models, chat and completions, streamed
// and not, streamed with the client's own accumulating helper, log-probabilities, tools and thinking
// accepted, a stream aborted by the client, and the errors the client maps to its exception classes.
// The model is greedy (temperature 0), so streamed and non-streamed answers must be identical.
//
// Usage: node openai_client_test.mjs --base-url http://HOST:PORT/v1 --api-key KEY --model NAME
// Exit status 0 when every check passes, 1 otherwise.
import assert from "node:assert/strict";
import OpenAI from "openai";

const args = { "base-url": "", "api-key": "", model: "" };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, "");
  if (!(key in args)) {
    console.error(`unknown option ${process.argv[i]}`);
    process.exit(1);
  }
  args[key] = process.argv[i + 1];
}
for (const [k, v] of Object.entries(args)) {
  if (!v) {
    console.error(`--${k} is required`);
    process.exit(1);
  }
}

const client = new OpenAI({ baseURL: args["base-url"], apiKey: args["api-key"], maxRetries: 0, timeout: 60_000 });
const model = args.model;
const messages = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Tell me about the sea." },
];

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

// Expects `promise` to reject with an instance of `cls` and the given status; returns the error.
async function rejects(promise, cls, status) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e && e.constructor && e.constructor.name}: ${e}`);
    assert.equal(e.status, status);
    return e;
  }
  assert.fail(`expected ${cls.name} (${status}), but the request succeeded`);
}

function checkUsage(usage, maxCompletion) {
  assert.ok(usage, "usage is missing");
  assert.ok(usage.prompt_tokens > 0, "prompt_tokens");
  assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= maxCompletion, `completion_tokens ${usage.completion_tokens}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
}

let chatAnswer = null;
let completionAnswer = null;

await check("models.list names the served model", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [model]);
  const m = await client.models.retrieve(model);
  assert.equal(m.id, model);
  assert.equal(m.object, "model");
});

await check("chat, not streamed", async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, model);
  assert.ok(Number.isInteger(r.created));
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, "assistant");
  assert.ok(["stop", "length", "tool_calls"].includes(c.finish_reason), c.finish_reason);
  checkUsage(r.usage, 16);
  chatAnswer = r;
});

await check("chat, streamed: the same text, [DONE], usage chunk", async () => {
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  let role = null;
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, "chat.completion.chunk");
    assert.match(chunk.id, /^chatcmpl-/);
    if (chunk.choices.length === 0) {
      usage = chunk.usage;
      continue;
    }
    const d = chunk.choices[0].delta;
    if (d.role) role = d.role;
    if (d.content) text += d.content;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.ok(chunks >= 2);
  assert.equal(role, "assistant");
  assert.equal(text, chatAnswer.choices[0].message.content ?? "");
  assert.equal(finish, chatAnswer.choices[0].finish_reason);
  assert.deepEqual(usage, chatAnswer.usage);
});

await check("chat, streamed through the client's accumulating helper", async () => {
  const stream = client.chat.completions.stream({ model, messages, max_tokens: 16, temperature: 0 });
  const final = await stream.finalChatCompletion();
  assert.equal(final.choices[0].message.content ?? "", chatAnswer.choices[0].message.content ?? "");
  assert.equal(final.choices[0].finish_reason, chatAnswer.choices[0].finish_reason);
});

await check("chat with log-probabilities", async () => {
  const r = await client.chat.completions.create({
    model, messages, max_completion_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2,
  });
  const lp = r.choices[0].logprobs;
  assert.ok(lp && Array.isArray(lp.content), "logprobs.content");
  assert.ok(lp.content.length >= 1 && lp.content.length <= 8);
  for (const t of lp.content) {
    assert.equal(typeof t.token, "string");
    assert.ok(t.logprob <= 0);
    assert.ok(Array.isArray(t.bytes));
    assert.ok(t.top_logprobs.length >= 1 && t.top_logprobs.length <= 2);
  }
});

await check("chat with tools, a seed, stop strings and thinking is accepted", async () => {
  const tools = [{
    type: "function",
    function: { name: "get_weather", description: "Weather of a city",
                parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
  }];
  const r = await client.chat.completions.create({
    model, messages, max_tokens: 8, temperature: 0.7, top_p: 0.9, seed: 7, stop: ["\n\n", "###"], tools,
    tool_choice: "auto", reasoning_effort: "low",
  });
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  if (c.message.tool_calls) {
    for (const t of c.message.tool_calls) {
      assert.match(t.id, /^call_/);
      assert.equal(t.type, "function");
      JSON.parse(t.function.arguments);
    }
  }
  // The same seed gives the same answer.
  const again = await client.chat.completions.create({
    model, messages, max_tokens: 8, temperature: 0.7, top_p: 0.9, seed: 7, stop: ["\n\n", "###"], tools,
    tool_choice: "auto", reasoning_effort: "low",
  });
  assert.deepEqual(again.choices[0].message.content, c.message.content);
});

// A byte of a well-formed UTF-8 character starting at b[i]: its length (1-4), or 0 (Unicode table 3-7).
function charLength(b, i) {
  const c = b[i];
  const cont = (k, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// The text of completion logprob tokens: their bytes ("bytes:\\xe2" for part of a character) joined,
// a byte that is not part of a whole character replaced with U+FFFD. (The server replaces a whole
// run of byte tokens that is not well-formed, as Hugging Face tokenizers do; the requests here are
// 5 tokens long, all whole characters: the greedy sixth token is a stray byte.)
function textOfTokens(tokens) {
  const bytes = [];
  for (const t of tokens) {
    if (t.startsWith("bytes:")) {
      for (const m of t.slice(6).matchAll(/\\x([0-9a-f]{2})/g)) bytes.push(parseInt(m[1], 16));
    } else {
      bytes.push(...Buffer.from(t, "utf8"));
    }
  }
  let out = "";
  for (let i = 0; i < bytes.length;) {
    const n = charLength(bytes, i);
    out += n === 0 ? "\uFFFD" : Buffer.from(bytes.slice(i, i + n)).toString("utf8");
    i += Math.max(n, 1);
  }
  return out;
}

await check("completions, not streamed", async () => {
  const r = await client.completions.create({ model, prompt: "The sea is", max_tokens: 5, temperature: 0, logprobs: 1 });
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.object, "text_completion");
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].text, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  checkUsage(r.usage, 5);
  const lp = r.choices[0].logprobs;
  assert.equal(textOfTokens(lp.tokens), r.choices[0].text);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  completionAnswer = r;
});

await check("completions, streamed: the same text", async () => {
  const stream = await client.completions.create({
    model, prompt: "The sea is", max_tokens: 5, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "text_completion");
    if (chunk.choices.length === 0) {
      usage = chunk.usage;
      continue;
    }
    text += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(text, completionAnswer.choices[0].text);
  assert.equal(finish, completionAnswer.choices[0].finish_reason);
  assert.deepEqual(usage, completionAnswer.usage);
});

await check("a stream aborted by the client leaves the server serving", async () => {
  const controller = new AbortController();
  const stream = await client.completions.create(
    { model, prompt: "Once upon a time", max_tokens: 200, temperature: 0, stream: true },
    { signal: controller.signal });
  let n = 0;
  try {
    for await (const chunk of stream) {
      if (++n === 2) controller.abort();
    }
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === "AbortError", `${e}`);
  }
  const r = await client.completions.create({ model, prompt: "The sea is", max_tokens: 5, temperature: 0 });
  assert.equal(r.choices[0].text, completionAnswer.choices[0].text);
});

await check("n choices and a JSON schema's guided output", async () => {
  const two = await client.chat.completions.create({ model, messages, n: 2, max_tokens: 6, seed: 4 });
  assert.equal(two.choices.length, 2);
  assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
  const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] };
  const r = await client.chat.completions.create({
    model, messages, max_tokens: 60, seed: 1,
    response_format: { type: "json_schema", json_schema: { name: "answer", schema } },
  });
  const content = r.choices[0].message.content ?? "";
  if (r.choices[0].finish_reason === "stop") assert.equal(typeof JSON.parse(content).ok, "boolean", content);
  else assert.ok(!content.includes("}") || content.trim().startsWith("{"), content);
});

await check("best_of and echo", async () => {
  const best = await client.completions.create({ model, prompt: "The sea is", max_tokens: 5, seed: 3, n: 2, best_of: 4 });
  assert.equal(best.choices.length, 2);
  assert.deepEqual(best.choices.map((c) => c.index), [0, 1]);
  assert.equal(best.choices[0].logprobs, null);
  const echoed = await client.completions.create({ model, prompt: "The sea is", max_tokens: 5, temperature: 0, echo: true });
  assert.equal(echoed.choices[0].text, "The sea is" + completionAnswer.choices[0].text);
  await rejects(client.completions.create({ model, prompt: "x", best_of: 2, stream: true }), OpenAI.BadRequestError, 400);
});

await check("errors: key, model, fields, context", async () => {
  const bad = new OpenAI({ baseURL: args["base-url"], apiKey: "wrong-key", maxRetries: 0 });
  await rejects(bad.chat.completions.create({ model, messages }), OpenAI.AuthenticationError, 401);
  const nf = await rejects(client.chat.completions.create({ model: "gpt-4o", messages }), OpenAI.NotFoundError, 404);
  assert.equal(nf.code, "model_not_found");
  const t = await rejects(client.chat.completions.create({ model, messages, temperature: -1 }), OpenAI.BadRequestError, 400);
  assert.equal(t.param, "temperature");
  const n = await rejects(client.chat.completions.create({ model, messages, n: 129 }), OpenAI.BadRequestError, 400);
  assert.equal(n.param, "n");
  const ctx = await rejects(client.completions.create({ model, prompt: "x", max_tokens: 1 << 30 }), OpenAI.BadRequestError, 400);
  assert.equal(ctx.code, "context_length_exceeded");
  await rejects(client.chat.completions.create({ model, messages: [{ role: "wizard", content: "hi" }] }), OpenAI.BadRequestError, 400);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
