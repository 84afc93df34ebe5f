// JSON and SSE helpers for tests/integration/modelsim.sh (node, no packages).
//
//   node modelsim-json.mjs get 'EXPR' < reply.json
//       prints EXPR evaluated with `j` bound to the parsed input
//       (objects as JSON, strings raw); exits 1 when the input is not JSON.
//   node modelsim-json.mjs sse < stream.txt
//       summarises a Server-Sent-Events completion stream as one JSON object:
//       {events, invalid, done, done_last, role_first, objects, content,
//        token_chunks, finish, usage, ids}
import { readFileSync } from "node:fs";

const input = readFileSync(0, "utf8");
const [mode, expr] = process.argv.slice(2);

function show(v) {
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

if (mode === "get") {
  let j;
  try {
    j = JSON.parse(input);
  } catch (e) {
    console.log("INVALID-JSON");
    process.exit(1);
  }
  // eslint-disable-next-line no-new-func
  const v = new Function("j", `return (${expr});`)(j);
  console.log(show(v));
} else if (mode === "sse") {
  const s = {
    events: 0, invalid: 0, done: false, done_last: false, role_first: false,
    objects: [], content: "", token_chunks: 0, finish: null, usage: null, ids: [],
  };
  const lines = input.split("\n");
  let last = null;
  for (const line of lines) {
    if (!line.startsWith("data: ")) continue;
    const data = line.slice(6);
    s.events++;
    last = data;
    if (data === "[DONE]") { s.done = true; continue; }
    let c;
    try { c = JSON.parse(data); } catch (e) { s.invalid++; continue; }
    if (!s.objects.includes(c.object)) s.objects.push(c.object);
    if (!s.ids.includes(c.id)) s.ids.push(c.id);
    if (c.usage) s.usage = c.usage;
    const ch = (c.choices || [])[0];
    if (!ch) continue;
    if (s.events === 1 && ch.delta && ch.delta.role === "assistant") s.role_first = true;
    const text = ch.delta ? ch.delta.content : ch.text;
    if (text) { s.content += text; s.token_chunks++; }
    if (ch.finish_reason) s.finish = ch.finish_reason;
  }
  s.done_last = last === "[DONE]";
  console.log(JSON.stringify(s));
} else {
  console.error("usage: modelsim-json.mjs get EXPR | sse");
  process.exit(2);
}
