/* Model names: [host/][namespace/]model[:tag] with Ollama's defaults, validated
 * so that a name can never escape the manifests folder (no "..", no slashes in
 * a part, a fixed character set, bounded length). Also the human-readable
 * formatting Ollama's CLI uses (sizes, relative times, parameter counts) and
 * the edit distance behind "did you mean". */
#include "store/store_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int part_ok(const char *p, size_t n, int is_host, int is_tag) {
    if (n == 0 || n > STORE_PART_MAX) return 0;
    if (n == 1 && p[0] == '.') return 0;
    if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
    /* Ollama: parts start with a letter or digit (tags may start with '_') */
    if (!isalnum((unsigned char)p[0]) && !(is_tag && p[0] == '_')) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (isalnum(c) || c == '_' || c == '-' || c == '.') continue;
        if (is_host && c == ':') continue;
        return 0;
    }
    return 1;
}

static void put(char *dst, const char *src, size_t n) {
    memcpy(dst, src, n);
    dst[n] = 0;
}

int store_name_parse(const char *s, store_name *out, hl_err *err) {
    memset(out, 0, sizeof *out);
    if (!s || !*s) return hl_err_set(err, HL_EINVAL, "empty model name");
    size_t len = strlen(s);
    if (len > 4 * STORE_PART_MAX + 3)
        return hl_err_set(err, HL_EINVAL, "model name is too long (%zu bytes; at most %d)", len, 4 * STORE_PART_MAX + 3);
    /* the tag is after the last ':' that follows the last '/' */
    const char *slash = strrchr(s, '/');
    const char *base = slash ? slash + 1 : s;
    const char *colon = strchr(base, ':');
    const char *tag = colon ? colon + 1 : STORE_DEFAULT_TAG;
    size_t path_len = colon ? (size_t)(colon - s) : len;
    if (colon && !*tag) return hl_err_set(err, HL_EINVAL, "invalid model name \"%s\": empty tag after ':'", s);
    /* split the path part into up to 3 pieces */
    const char *parts[4];
    size_t plen[4];
    int np = 0;
    const char *p = s, *end = s + path_len;
    while (p <= end) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q) q = end;
        if (np == 3) return hl_err_set(err, HL_EINVAL, "invalid model name \"%s\": too many '/' (use host/namespace/model:tag)", s);
        parts[np] = p;
        plen[np] = (size_t)(q - p);
        np++;
        p = q + 1;
        if (q == end) break;
    }
    const char *host = STORE_DEFAULT_HOST, *ns = STORE_DEFAULT_NS;
    size_t hl = strlen(host), nl = strlen(ns);
    if (np == 3) {
        host = parts[0], hl = plen[0];
        ns = parts[1], nl = plen[1];
    } else if (np == 2) {
        ns = parts[0], nl = plen[0];
    }
    const char *model = parts[np - 1];
    size_t ml = plen[np - 1];
    if (!part_ok(host, hl, 1, 0)) return hl_err_set(err, HL_EINVAL, "invalid model name \"%s\": bad host \"%.*s\"", s, (int)hl, host);
    if (!part_ok(ns, nl, 0, 0)) return hl_err_set(err, HL_EINVAL, "invalid model name \"%s\": bad namespace \"%.*s\" (letters, digits, '_', '-', '.'; at most %d)", s, (int)nl, ns, STORE_PART_MAX);
    if (!part_ok(model, ml, 0, 0)) return hl_err_set(err, HL_EINVAL, "invalid model name \"%s\": bad model part \"%.*s\" (letters, digits, '_', '-', '.'; at most %d)", s, (int)ml, model, STORE_PART_MAX);
    if (!part_ok(tag, strlen(tag), 0, 1)) return hl_err_set(err, HL_EINVAL, "invalid model name \"%s\": bad tag \"%s\" (letters, digits, '_', '-', '.'; at most %d)", s, tag, STORE_PART_MAX);
    put(out->host, host, hl);
    put(out->ns, ns, nl);
    put(out->model, model, ml);
    put(out->tag, tag, strlen(tag));
    return HL_OK;
}

void store_name_full(const store_name *n, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s/%s:%s", n->host, n->ns, n->model, n->tag);
}

void store_name_display(const store_name *n, char *out, size_t cap) {
    if (strcasecmp(n->host, STORE_DEFAULT_HOST) == 0) {
        if (strcasecmp(n->ns, STORE_DEFAULT_NS) == 0)
            snprintf(out, cap, "%s:%s", n->model, n->tag);
        else
            snprintf(out, cap, "%s/%s:%s", n->ns, n->model, n->tag);
    } else {
        store_name_full(n, out, cap);
    }
}

/* Ollama's format.HumanBytes: decimal units; integers from 10 up, one
 * decimal below unless the value is whole. */
void store_human_bytes(int64_t b, char *out, size_t cap) {
    static const struct { double scale; const char *unit; } u[] = {
        {1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "KB"}};
    for (size_t i = 0; i < 4; i++) {
        if ((double)b >= u[i].scale) {
            double v = (double)b / u[i].scale;
            if (v >= 10 || v == (double)(int64_t)v)
                snprintf(out, cap, "%d %s", (int)v, u[i].unit);
            else
                snprintf(out, cap, "%.1f %s", v, u[i].unit);
            return;
        }
    }
    snprintf(out, cap, "%lld B", (long long)b);
}

static void human_duration(int64_t secs, char *out, size_t cap) {
    if (secs < 1) { snprintf(out, cap, "Less than a second"); return; }
    if (secs == 1) { snprintf(out, cap, "1 second"); return; }
    if (secs < 60) { snprintf(out, cap, "%lld seconds", (long long)secs); return; }
    int64_t minutes = secs / 60;
    if (minutes == 1) { snprintf(out, cap, "About a minute"); return; }
    if (minutes < 60) { snprintf(out, cap, "%lld minutes", (long long)minutes); return; }
    int64_t hours = (secs + 1800) / 3600; /* Go rounds hours */
    if (hours == 1) { snprintf(out, cap, "About an hour"); return; }
    if (hours < 48) { snprintf(out, cap, "%lld hours", (long long)hours); return; }
    if (hours < 24 * 7 * 2) { snprintf(out, cap, "%lld days", (long long)(hours / 24)); return; }
    if (hours < 24 * 30 * 2) { snprintf(out, cap, "%lld weeks", (long long)(hours / 24 / 7)); return; }
    if (hours < 24 * 365 * 2) { snprintf(out, cap, "%lld months", (long long)(hours / 24 / 30)); return; }
    snprintf(out, cap, "%lld years", (long long)(secs / 3600 / 24 / 365));
}

void store_human_time(int64_t then, int64_t now, char *out, size_t cap) {
    if (then <= 0) { snprintf(out, cap, "Never"); return; }
    char d[64];
    if (then > now) {
        human_duration(then - now, d, sizeof d);
        snprintf(out, cap, "%s from now", d);
    } else {
        human_duration(now - then, d, sizeof d);
        snprintf(out, cap, "%s ago", d);
    }
}

/* Ollama's format.HumanNumber: "8.0B", "494.03M" style (one decimal here). */
void store_human_params(int64_t n, char *out, size_t cap) {
    if (n >= 1000000000) snprintf(out, cap, "%.1fB", (double)n / 1e9);
    else if (n >= 1000000) snprintf(out, cap, "%.1fM", (double)n / 1e6);
    else if (n >= 1000) snprintf(out, cap, "%.1fK", (double)n / 1e3);
    else snprintf(out, cap, "%lld", (long long)n);
}

int store_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 256 || lb > 256) return 1000;
    int row[257];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int v = prev + cost;
            if (row[j] + 1 < v) v = row[j] + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            prev = cur;
        }
    }
    return row[lb];
}
