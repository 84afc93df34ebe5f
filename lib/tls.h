/* TLS transport (OpenSSL 3): factories that wrap fresh fds in a TLS
 * transport for mg_httpd (server) and mg_httpc (client); see transport.h.
 *
 * TLS 1.2 and later only. ALPN: only "http/1.1" is offered (client) and
 * accepted (server); a client offering h2 first (Go, kubectl) gets http/1.1,
 * a client offering no http/1.1 gets no ALPN answer and speaks HTTP/1.1
 * anyway. Reads and writes never raise SIGPIPE (the socket is driven through
 * send(MSG_NOSIGNAL)). A peer that closes without close_notify is an orderly
 * end of stream: HTTP framing detects truncation.
 *
 * A handshake failure (bad certificate, wrong CA, plain HTTP on the TLS port)
 * is -EPROTO from handshake(); the reason is logged at debug level. */
#ifndef MG_TLS_H
#define MG_TLS_H

#include "transport.h"

/* A server factory from PEM files: cert_file (the certificate, optionally
 * followed by its chain), key_file (its private key). ca_file NULL: client
 * certificates are not requested; else they are required and verified
 * against ca_file (mTLS). 0, or -errno with *err (if err) a message naming
 * the file and OpenSSL's reason, valid until the next call of a factory
 * constructor. */
int mg_tls_server_factory_new(const char *cert_file, const char *key_file, const char *ca_file,
                              struct mg_xprt_factory **out, const char **err);

/* A client factory. ca_file NULL: the system's default trust store. cert_file
 * and key_file (both or neither): the client certificate for mTLS. insecure:
 * the server certificate is not verified at all (tests, --insecure). Unless
 * insecure, the certificate must match the peer_name given to wrap() (a DNS
 * name, also sent as SNI, or an IP address, matched against IP SANs). */
int mg_tls_client_factory_new(const char *ca_file, const char *cert_file, const char *key_file,
                              int insecure, struct mg_xprt_factory **out, const char **err);

/* Frees a factory from above (NULL is fine). Transports it made stay valid:
 * each holds a reference to the OpenSSL context. */
void mg_tls_factory_free(struct mg_xprt_factory *f);

/* For clients that must trust a self-signed server certificate (kubeconfig
 * certificate-authority-data): when the first certificate in cert_file is
 * self-signed (its own issuer, signature verified), *out_b64 gets the base64
 * of that certificate in PEM (malloc'd, NUL-terminated) and 1 is returned; 0
 * when it is not self-signed (*out_b64 NULL); -errno when the file cannot be
 * read or parsed. */
int mg_tls_self_signed_pem_b64(const char *cert_file, char **out_b64);

extern const struct mg_xprt_ops mg_xprt_tls_ops;

#endif
