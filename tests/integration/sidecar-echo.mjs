// An upstream for the sidecar tests that shows what the sidecar sent it
// (node, no packages; modelsim does not echo request headers).
//
//   node sidecar-echo.mjs PORT_FILE [KEEPALIVE_MS]
//
// Listens on 127.0.0.1, port 0, writes the port to PORT_FILE, and answers
// every request with 200 and the JSON
//   {"method","url","headers":{lower-case name: value},"body_len","body_sha256"}
// with "Content-Length" framing. An idle keep-alive connection is closed after
// KEEPALIVE_MS (default 60000), as model servers do. Ends on SIGTERM.
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { writeFileSync, renameSync } from "node:fs";

const portFile = process.argv[2];
const server = createServer((req, res) => {
  const h = createHash("sha256");
  let n = 0;
  req.on("data", (c) => { n += c.length; h.update(c); });
  req.on("end", () => {
    const body = JSON.stringify({
      method: req.method, url: req.url, headers: req.headers,
      body_len: n, body_sha256: h.digest("hex"),
    });
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = Number(process.argv[3] || 60000);
server.listen(0, "127.0.0.1", () => {
  writeFileSync(portFile + ".tmp", String(server.address().port) + "\n");
  renameSync(portFile + ".tmp", portFile);
});
process.on("SIGTERM", () => { server.close(); process.exit(0); });
