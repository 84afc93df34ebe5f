// The real OpenAI JavaScript client (npm package `openai`, v4) against
// modelsim: chat and text completions, whole and streamed, as an
// application would call them. Prints one TAP-style line per case for
// tests/integration/modelsim_openai.sh.
//
//   NODE_PATH=... node openai-client.mjs BASE_URL MODEL TOKENS
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
// Resolved from NODE_PATH (the folder the test installed the package in).
const OpenAI = require(process.env.OPENAI_PKG || "openai");

const [baseURL, model, tokensArg] = process.argv.slice(2);
const tokens = Number(tokensArg);
const client = new OpenAI({ baseURL, apiKey: "not-needed", maxRetries: 0, timeout: 10000 });

let failed = 0;
function check(name, cond, detail) {
  if (cond) {
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`not ok - ${name}`);
    if (detail !== undefined) console.log(`# ${JSON.stringify(detail)}`);
  }
}

async function run(name, fn) {
  try {
    await fn();
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: threw`);
    console.log(`# ${String(e && e.stack || e).split("\n").slice(0, 3).join(" | ")}`);
  }
}

const messages = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Write a haiku about canary rollouts." },
];

let chatText = "";

await run("chat, whole", async () => {
  const r = await client.chat.completions.create({ model, messages });
  chatText = r.choices[0].message.content;
  check("chat: object and id", r.object === "chat.completion" && r.id.startsWith("chatcmpl-"), r.id);
  check("chat: model echoed", r.model === model, r.model);
  check("chat: assistant message with content",
    r.choices[0].message.role === "assistant" && chatText.length > 0, r.choices[0].message);
  check("chat: finish_reason stop", r.choices[0].finish_reason === "stop", r.choices[0].finish_reason);
  check("chat: usage", r.usage.completion_tokens === tokens &&
    r.usage.total_tokens === r.usage.prompt_tokens + tokens && r.usage.prompt_tokens > 0, r.usage);
  check("chat: one word per token", chatText.trim().split(/\s+/).length === tokens, chatText);
});

await run("chat, whole, max_tokens", async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 3 });
  check("chat max_tokens: finish_reason length", r.choices[0].finish_reason === "length", r.choices[0]);
  check("chat max_tokens: usage capped", r.usage.completion_tokens === 3, r.usage);
});

await run("chat, stream", async () => {
  const stream = await client.chat.completions.create({
    model, messages, stream: true, stream_options: { include_usage: true },
  });
  let text = "", chunks = 0, role = null, finish = null, usage = null, ids = new Set();
  for await (const c of stream) {
    ids.add(c.id);
    if (c.object !== "chat.completion.chunk") throw new Error(`chunk object ${c.object}`);
    if (c.usage) usage = c.usage;
    const ch = c.choices[0];
    if (!ch) continue;
    if (ch.delta.role) role = ch.delta.role;
    if (ch.delta.content) { text += ch.delta.content; chunks++; }
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  check("chat stream: role assistant first", role === "assistant", role);
  check("chat stream: one chunk per token", chunks === tokens, chunks);
  check("chat stream: same text as the whole reply", text === chatText, { text, chatText });
  check("chat stream: finish_reason stop", finish === "stop", finish);
  check("chat stream: usage chunk", usage && usage.completion_tokens === tokens, usage);
  check("chat stream: one id", ids.size === 1, [...ids]);
});

await run("chat, stream, helper", async () => {
  // The SDK's higher-level stream helper assembles the final message.
  const runner = client.beta.chat.completions.stream({ model, messages });
  const final = await runner.finalChatCompletion();
  check("chat stream helper: final message", final.choices[0].message.content === chatText,
    final.choices[0].message);
});

let compText = "";
await run("completion, whole", async () => {
  const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 5 });
  compText = r.choices[0].text;
  check("completion: object and id", r.object === "text_completion" && r.id.startsWith("cmpl-"), r.id);
  check("completion: model echoed", r.model === model, r.model);
  check("completion: finish_reason length", r.choices[0].finish_reason === "length", r.choices[0]);
  check("completion: usage", r.usage.completion_tokens === 5 &&
    r.usage.total_tokens === r.usage.prompt_tokens + 5, r.usage);
});

await run("completion, stream", async () => {
  const stream = await client.completions.create({
    model, prompt: "Once upon a time", max_tokens: 5, stream: true,
    stream_options: { include_usage: true },
  });
  let text = "", finish = null, usage = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    const ch = c.choices[0];
    if (!ch) continue;
    text += ch.text;
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  check("completion stream: same text as the whole reply", text === compText, { text, compText });
  check("completion stream: finish_reason length", finish === "length", finish);
  check("completion stream: usage", usage && usage.completion_tokens === 5, usage);
});

await run("models", async () => {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id);
  check("models.list names the model", ids.includes(model), ids);
});

await run("errors", async () => {
  let err = null;
  try {
    await client.chat.completions.create({ model: "no-such-model", messages });
  } catch (e) {
    err = e;
  }
  check("unknown model: NotFoundError with status 404",
    err instanceof OpenAI.NotFoundError && err.status === 404, err && err.message);
  check("unknown model: error code model_not_found", err && err.code === "model_not_found",
    err && err.error);
  err = null;
  try {
    await client.chat.completions.create({ model, messages },
      { headers: { "X-Return-Error": "429" } });
  } catch (e) {
    err = e;
  }
  check("X-Return-Error 429: RateLimitError", err instanceof OpenAI.RateLimitError, err && err.message);
  err = null;
  try {
    await client.chat.completions.create({ model, messages },
      { headers: { "X-Return-Error": "400" } });
  } catch (e) {
    err = e;
  }
  check("X-Return-Error 400: BadRequestError with vLLM's context message",
    err instanceof OpenAI.BadRequestError && /maximum context length is/.test(err.message),
    err && err.message);
});

process.exit(failed ? 1 : 0);
