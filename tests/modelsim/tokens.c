/* Deterministic "generation": every reply is a function of the seed and the
 * prompt, so tests can compare replies across runs, workers and versions.
 * A token is a word from a fixed list (plus, now and then, punctuation);
 * the reply's token count is exactly the number of words emitted. Delays
 * get jitter drawn from the same kind of stream. */
#include "tests/modelsim/modelsim.h"

#include <string.h>

/* splitmix64: tiny state, good enough statistics, and a seed of 0 works. */
uint64_t ms_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double ms_rng_unit(uint64_t *state)
{
    return (double)(ms_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* FNV-1a, 64-bit. */
uint64_t ms_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Common words (each under 16 bytes): replies read like text in logs
 * and dashboards without looking like anything in particular. */
static const char *const words[] = {
    "the", "model", "answer", "is", "a", "simple", "way", "to", "serve", "tokens",
    "and", "every", "request", "gets", "its", "own", "reply", "from", "this", "server",
    "which", "runs", "on", "one", "loop", "with", "timers", "for", "each", "stream",
    "of", "words", "that", "look", "like", "text", "but", "mean", "nothing", "in",
    "particular", "while", "tests", "compare", "them", "across", "runs", "as", "long", "seed",
    "stays", "same", "so", "results", "are", "easy", "check", "when", "version", "changes",
    "traffic", "moves", "between", "stable", "canary", "replicas", "under", "load", "latency", "grows",
    "queue", "waits", "first", "token", "arrives", "later", "than", "before", "then", "rest",
    "follow", "at", "steady", "pace", "until", "end", "reached", "or", "limit", "cuts",
    "it", "short", "clients", "read", "chunks", "over", "events", "see", "usage", "counts",
    "prompt", "completion", "total", "numbers", "match", "what", "was", "sent", "back", "here",
    "there", "some", "many", "few", "more", "less", "most", "all", "any", "no",
    "good", "new", "old", "great", "small", "large", "fast", "slow", "quiet", "bright",
    "clear", "warm", "cold", "early", "late", "near", "far", "high", "low", "open",
    "river", "mountain", "city", "garden", "window", "table", "paper", "light", "water", "stone",
    "morning", "evening", "night", "day", "year", "story", "music", "color", "voice", "idea",
    "people", "friend", "teacher", "student", "village", "market", "road", "bridge", "forest", "ocean",
    "can", "will", "may", "should", "could", "would", "must", "might", "does", "did",
    "make", "take", "give", "find", "keep", "bring", "hold", "turn", "start", "show",
    "hear", "play", "move", "live", "believe", "write", "learn", "build", "grow", "help",
    "also", "often", "always", "never", "sometimes", "usually", "again", "still", "already", "soon",
    "because", "although", "since", "unless", "whether", "where", "how", "why", "who", "whom",
    "about", "after", "around", "below", "beyond", "during", "inside", "into", "through", "toward",
    "we", "you", "they", "he", "she", "our", "your", "their", "his", "her",
    "work", "plan", "part", "place", "case", "point", "group", "problem", "fact", "hand",
    "system", "program", "question", "number", "world", "life",
};

#define NWORDS (sizeof words / sizeof words[0])

size_t ms_token_text(uint64_t *state, uint32_t i, char *dst)
{
    uint64_t r = ms_rng_next(state);
    const char *w = words[r % NWORDS];
    size_t n = 0;
    if (i > 0)
        dst[n++] = ' ';
    size_t wl = strlen(w);
    memcpy(dst + n, w, wl);
    n += wl;
    /* Roughly one sentence end in twelve words and a comma in sixteen. */
    unsigned p = (unsigned)((r >> 8) % 192);
    if (p < 16)
        dst[n++] = '.';
    else if (p < 28)
        dst[n++] = ',';
    return n;
}

uint32_t ms_tokens_for_bytes(size_t n)
{
    uint64_t t = (n + 3) / 4;
    return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

uint32_t ms_jitter_ttft(uint64_t *state, uint32_t base, uint32_t pct)
{
    if (base == 0 || pct == 0)
        return base;
    /* Only upward: the configured TTFT is a floor tests rely on. */
    double f = 1.0 + (double)pct / 100.0 * ms_rng_unit(state);
    return (uint32_t)((double)base * f + 0.5);
}

uint32_t ms_jitter_itl(uint64_t *state, uint32_t base, uint32_t pct)
{
    if (base == 0 || pct == 0)
        return base;
    double f = 1.0 + (double)pct / 100.0 * (2.0 * ms_rng_unit(state) - 1.0);
    double v = (double)base * f + 0.5;
    return v < 0 ? 0 : (uint32_t)v;
}

size_t ms_u64_to_dec(char *dst, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}
