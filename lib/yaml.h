/* A YAML loader on libyaml that produces jansson values, typed the way
 * kubectl reads manifests, under limits fit for untrusted input.
 *
 * Typing of plain (unquoted, untagged) scalars follows kubectl, which turns
 * YAML into JSON with go-yaml v2 (YAML 1.1 rules) before anything else sees
 * it (sigs.k8s.io/yaml):
 *   null:     empty, ~, null, Null, NULL
 *   booleans: true/false, yes/no, on/off, y/n in lower, Capitalised or UPPER
 *             case ("on", "On", "ON"; not "oN")
 *   integers: decimal with optional sign, 0x hex, 0o octal, 0b binary, and a
 *             leading 0 as octal (0644 is 420: Kubernetes defaultMode);
 *             underscores are ignored (1_000)
 *   floats:   1.5, .5, 1e3, -2.5E-3; .inf/.nan are recognised and refused,
 *             since JSON cannot hold them (kubectl fails on them too)
 *   anything else, and every quoted scalar, is a string.
 * Integers past the 64-bit signed range become floats (JSON numbers).
 * Timestamps stay strings (go-yaml v2 also keeps them as strings).
 *
 * Mapping keys: must be scalars (a sequence or mapping as key is an error);
 * they are typed as above and then written as JSON strings like kubectl does
 * (yes: 1 gives {"true": 1}, 0x10: a gives {"16": "a"}); a null key is an
 * error; a duplicate key (after that conversion) is an error.
 *
 * Tags: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map, !!binary and
 * !!timestamp (both kept as strings), !!merge and the non-specific "!" (a
 * string) are honoured; a scalar that does not fit its tag is an error; any
 * other tag is refused (kubectl would silently ignore it, which hides
 * mistakes such as CloudFormation's !Ref).
 *
 * Merge keys (<<) are supported as YAML 1.1 defines them: the value is a
 * mapping or a sequence of mappings (usually aliases); keys written in the
 * mapping itself win, then earlier merged mappings win over later ones.
 *
 * Limits: input bytes, nesting depth, documents, and nodes. Nodes are counted
 * over the whole stream and each alias counts the full size of what it
 * expands to, so "billion laughs" documents are refused as soon as the
 * expansion would pass max_nodes, before anything is copied. Depth counts an
 * alias's expansion too.
 *
 * Errors are collected with the document name and line:column (1-based) of
 * the offending node or of libyaml's syntax error. JSON input works: YAML
 * flow style is a superset of it. */
#ifndef MG_YAML_H
#define MG_YAML_H

#include <stddef.h>

#include <jansson.h>

#include "json.h"

struct mg_yaml_limits {
    size_t max_bytes;    /* input size, default MG_YAML_DEFAULT_MAX_BYTES */
    unsigned max_depth;  /* nesting, default MG_YAML_DEFAULT_MAX_DEPTH, at most MG_YAML_HARD_MAX_DEPTH */
    size_t max_nodes;    /* scalars + sequences + mappings + keys, aliases expanded */
    size_t max_docs;     /* documents in a stream, empty ones included */
};

#define MG_YAML_DEFAULT_MAX_BYTES ((size_t)4 << 20)
#define MG_YAML_DEFAULT_MAX_DEPTH 100u
#define MG_YAML_DEFAULT_MAX_NODES ((size_t)1000000)
#define MG_YAML_DEFAULT_MAX_DOCS ((size_t)1000)
/* The loader recurses once per level; this bounds its stack use. */
#define MG_YAML_HARD_MAX_DEPTH 1000u

void mg_yaml_limits_default(struct mg_yaml_limits *l);

/* Loads every document of a stream into *docs, a new JSON array the caller
 * owns. Empty documents (nothing, only comments, or null) are skipped, as
 * kubectl skips them. lim NULL means the defaults; name labels errors.
 * Returns 0, -EFBIG (over max_bytes), -EINVAL (syntax, typing, limits: the
 * error is collected with its line:column), -ENOMEM. */
int mg_yaml_load_all(const char *data, size_t len, const struct mg_yaml_limits *lim,
                     const char *name, struct mg_json_errs *e, json_t **docs);

/* Loads a stream that holds at most one non-empty document into *doc (JSON
 * null when there is none). More than one is -EINVAL. */
int mg_yaml_load(const char *data, size_t len, const struct mg_yaml_limits *lim,
                 const char *name, struct mg_json_errs *e, json_t **doc);

/* Positions: mg_yaml_load_pos() is mg_yaml_load() that also records where
 * each node of the document starts (a mapping member at its key), by
 * path in lib/json.h's syntax ("routes[1].versions[0].weight"), so errors
 * found later by walking the JSON (a config check) can name line:column.
 * Nodes reached through aliases or merge keys are recorded where they
 * were written, not under the alias's path; a lookup then falls back to
 * the nearest recorded ancestor. On success *pos is the caller's
 * (mg_yaml_pos_free); on failure it is NULL. */
struct mg_yaml_pos;
int mg_yaml_load_pos(const char *data, size_t len, const struct mg_yaml_limits *lim,
                     const char *name, struct mg_json_errs *e, json_t **doc,
                     struct mg_yaml_pos **pos);
void mg_yaml_pos_free(struct mg_yaml_pos *pos);
/* line:col (1-based) of the node at path, or of its nearest recorded
 * ancestor (a missing key points at the mapping that lacks it; the root,
 * path "", is the document's start). 0 or -ENOENT (an empty document). */
int mg_yaml_pos_find(const struct mg_yaml_pos *pos, const char *path, unsigned *line,
                     unsigned *col);
/* Gives every error in e that has a path but no position the position of
 * that path (as mg_yaml_pos_find finds it). */
void mg_yaml_pos_locate(const struct mg_yaml_pos *pos, struct mg_json_errs *e);

/* The same from files, read up to max_bytes; also -errno. */
int mg_yaml_load_all_file(const char *path, const struct mg_yaml_limits *lim,
                          struct mg_json_errs *e, json_t **docs);
int mg_yaml_load_file(const char *path, const struct mg_yaml_limits *lim,
                      struct mg_json_errs *e, json_t **doc);

#endif
