// A deliberately unreliable upstream for the sidecar's retry tests (node, no
// packages): it fails the way the test asks, per request, and counts every
// attempt, so a test can tell how many times the sidecar sent a request and
// whether the body it sent the second time was the one the client sent.
//
//   node sidecar-flaky.mjs PORT_FILE
//
// Listens on 127.0.0.1, port 0, writes the port to PORT_FILE. Each request
// is read whole, then, by its "x-flaky" header (attempts are counted per
// "x-test-id", default "-"):
//   reset-first:N   the first N attempts: the connection is destroyed
//                   without a response byte (a reset before any response);
//                   later ones are echoed
//   status-first:N:CODE  the first N attempts get CODE (an OpenAI error
//                   body); later ones are echoed
//   partial         a 200 SSE head and one event, then the connection is
//                   destroyed (bytes reached the client: no retry allowed)
//   (none)          echoed
// The echo is 200 JSON {"attempt":n,"body_len":..,"body_sha256":..,
// "headers":{...}} with Content-Length framing.
// GET /count?id=ID answers {"attempts":n} for that test id; GET /count
// {"total":n} over all ids (GETs are not counted). Ends on SIGTERM.
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { writeFileSync, renameSync } from "node:fs";

const portFile = process.argv[2];
const attempts = new Map();
let total = 0;

function json(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method === "GET" && url.pathname === "/count") {
    const id = url.searchParams.get("id");
    if (id === null) return json(res, 200, { total });
    return json(res, 200, { attempts: attempts.get(id) || 0 });
  }
  const h = createHash("sha256");
  let n = 0;
  req.on("data", (c) => { n += c.length; h.update(c); });
  req.on("end", () => {
    const id = req.headers["x-test-id"] || "-";
    const attempt = (attempts.get(id) || 0) + 1;
    attempts.set(id, attempt);
    total++;
    const mode = String(req.headers["x-flaky"] || "");
    let m;
    if ((m = /^reset-first:(\d+)$/.exec(mode)) && attempt <= Number(m[1])) {
      req.socket.destroy();
      return;
    }
    if ((m = /^status-first:(\d+):(\d{3})$/.exec(mode)) && attempt <= Number(m[1])) {
      return json(res, Number(m[2]), { error: { message: `injected ${m[2]} on attempt ${attempt}`, type: "flaky", param: null, code: Number(m[2]) } });
    }
    if (mode === "partial") {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(`data: {"attempt":${attempt},"choices":[{"index":0,"delta":{"content":"first"}}]}\n\n`);
      setTimeout(() => req.socket.destroy(), 50);
      return;
    }
    json(res, 200, { attempt, body_len: n, body_sha256: h.digest("hex"), headers: req.headers });
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  writeFileSync(portFile + ".tmp", String(server.address().port) + "\n");
  renameSync(portFile + ".tmp", portFile);
});
process.on("SIGTERM", () => { server.close(); process.exit(0); });
