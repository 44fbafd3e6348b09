/* Statement execution: text and {{ }} output, if, for (loop variable,
 * inline filter, else, break/continue), set (plain, tuple unpacking,
 * namespace attributes, block capture), macro definitions and calls, call and
 * filter blocks, generation blocks. Returns 0, or EXEC_BREAK / EXEC_CONTINUE
 * travelling up to the nearest loop, or a negative error. */
#include "chat/internal.h"

#include <stdlib.h>
#include <string.h>

enum { EXEC_BREAK = 1, EXEC_CONTINUE = 2 };

static int exec_body(crender *r, cscope *s, cnode *const *items, int n, hl_buf *out);

static int oom(crender *r) { return hl_err_set(r->err, HL_ENOMEM, "out of memory while rendering the template"); }

static int tick(crender *r, const cnode *at) {
    if (++r->iters > r->lim.max_iterations)
        return chat_rerr(r, at, HL_ERANGE, "more than %zu loop iterations and macro calls (runaway template?)",
                         r->lim.max_iterations);
    return 0;
}

/* binds for/set targets: one name takes the value, several unpack a sequence */
static int bind_targets(crender *r, cscope *s, const cnode *n, cv v) {
    if (n->n_kw == 1) return chat_scope_set(s, n->kw_names[0], cv_ref(v)) ? oom(r) : 0;
    cv items;
    int rc = chat_iterate(r, n, v, &items);
    if (rc) return rc;
    if (items.u.l->n != (size_t)n->n_kw) {
        size_t got = items.u.l->n;
        cv_unref(items);
        return chat_rerr(r, n, HL_EINVAL, "cannot unpack %zu values into %d names", got, n->n_kw);
    }
    for (int i = 0; i < n->n_kw; i++)
        if (chat_scope_set(s, n->kw_names[i], cv_ref(items.u.l->v[i]))) { cv_unref(items); return oom(r); }
    cv_unref(items);
    return 0;
}

static int exec_for(crender *r, cscope *s, const cnode *n, hl_buf *out) {
    cv seq, all;
    int rc = chat_ev(r, s, n->a, &seq);
    if (rc) return rc;
    rc = chat_iterate(r, n->a, seq, &all);
    cv_unref(seq);
    if (rc) return rc;
    if (n->b) { /* for x in xs if cond: filter first, so loop.length counts what is kept */
        cv kept = cv_list_new(all.u.l->n);
        if (kept.t != CV_LIST) { cv_unref(all); return oom(r); }
        for (size_t i = 0; i < all.u.l->n && !rc; i++) {
            if ((rc = tick(r, n))) break;
            cscope *fs = chat_scope_new(s);
            if (!fs) { rc = oom(r); break; }
            cv c;
            rc = bind_targets(r, fs, n, all.u.l->v[i]);
            if (!rc && !(rc = chat_ev(r, fs, n->b, &c))) {
                if (cv_truthy(c)) rc = cv_list_push(kept, cv_ref(all.u.l->v[i])) ? oom(r) : 0;
                cv_unref(c);
            }
            chat_scope_destroy(fs);
        }
        cv_unref(all);
        if (rc) { cv_unref(kept); return rc; }
        all = kept;
    }
    cv_loop L = {all, 0, 1, cv_undef(NULL)};
    cv loopv = {CV_LOOP, {0}};
    loopv.u.loop = &L;
    for (L.idx = 0; L.idx < all.u.l->n; L.idx++) {
        if ((rc = tick(r, n))) break;
        cscope *it = chat_scope_new(s);
        if (!it) { rc = oom(r); break; }
        rc = bind_targets(r, it, n, all.u.l->v[L.idx]);
        if (!rc) rc = chat_scope_set(it, "loop", loopv) ? oom(r) : 0;
        if (!rc) rc = exec_body(r, it, n->items, n->n_items, out);
        chat_scope_destroy(it);
        if (rc == EXEC_CONTINUE) { rc = 0; continue; }
        if (rc == EXEC_BREAK) { rc = 0; break; }
        if (rc) break;
    }
    size_t count = all.u.l->n;
    cv_unref(L.last_changed);
    cv_unref(all);
    if (!rc && count == 0 && n->d) rc = exec_body(r, s, n->d->items, n->d->n_items, out);
    return rc;
}

static int exec_set(crender *r, cscope *s, const cnode *n) {
    cv v;
    int rc = chat_ev(r, s, n->a, &v);
    if (rc) return rc;
    if (n->flag) {
        cv *ns = chat_scope_find(s, n->kw_names[0]);
        if (!ns || ns->t != CV_NS) {
            cv_unref(v);
            return chat_rerr(r, n, HL_EINVAL, "cannot assign attribute on non-namespace object '%s'", n->kw_names[0]);
        }
        cv k = cv_str_cstr(n->name);
        if (cv_is_oom(k)) { cv_unref(v); return oom(r); }
        return cv_dict_set(*ns, k, v) ? oom(r) : 0;
    }
    rc = bind_targets(r, s, n, v);
    cv_unref(v);
    return rc;
}

/* renders a block's body into a string; the body gets its own scope, so
 * assignments inside {% set x %}...{% endset %} or a filter block stay there */
static int capture(crender *r, cscope *s, const cnode *n, cv *out) {
    hl_buf b = {0};
    cscope *inner = chat_scope_new(s);
    if (!inner) return oom(r);
    int rc = exec_body(r, inner, n->items, n->n_items, &b);
    chat_scope_destroy(inner);
    if (rc) { hl_buf_free(&b); return rc; }
    if (b.oom) { hl_buf_free(&b); return oom(r); }
    *out = cv_str_new(b.data ? b.data : "", b.len);
    hl_buf_free(&b);
    return cv_is_oom(*out) ? oom(r) : 0;
}

int chat_call_macro(crender *r, const cnode *at, const cnode *m, cv *args, int nargs, const char **kwn, cv *kwv,
                    int nkw, const cnode *caller, cv *out) {
    int rc = tick(r, at);
    if (rc) return rc;
    if (++r->depth > r->lim.max_depth) {
        r->depth--;
        return chat_rerr(r, at, HL_ERANGE, "macro calls nested deeper than %d (recursive macro?)", r->lim.max_depth);
    }
    const char *mname = m->name ? m->name : "caller";
    cscope *ms = chat_scope_new(m->k == CN_CALLBLOCK && r->caller_scope ? r->caller_scope : r->root);
    if (!ms) { r->depth--; return oom(r); }
    if (nargs > m->n_kw && !(m->flag & 1)) {
        rc = chat_rerr(r, at, HL_EINVAL, "macro '%s' takes not more than %d argument(s)", mname, m->n_kw);
        goto done;
    }
    for (int i = 0; i < m->n_kw && !rc; i++) {
        cv v = {CV_UNDEF, {0}};
        int found = 0;
        if (i < nargs) { v = cv_ref(args[i]); found = 1; }
        for (int k = 0; k < nkw; k++)
            if (strcmp(kwn[k], m->kw_names[i]) == 0) {
                if (found) { cv_unref(v); rc = chat_rerr(r, at, HL_EINVAL, "macro '%s' got multiple values for argument '%s'", mname, kwn[k]); break; }
                v = cv_ref(kwv[k]);
                found = 1;
            }
        if (rc) break;
        if (!found) {
            if (m->kw_vals && m->kw_vals[i]) rc = chat_ev(r, ms, m->kw_vals[i], &v);
            else v = cv_undef(m->kw_names[i]);
        }
        if (!rc) rc = chat_scope_set(ms, m->kw_names[i], v) ? oom(r) : 0;
    }
    cv extra_kw = cv_dict_new();
    if (extra_kw.t != CV_DICT) rc = oom(r);
    for (int k = 0; k < nkw && !rc; k++) {
        int known = 0;
        for (int i = 0; i < m->n_kw; i++) known |= strcmp(kwn[k], m->kw_names[i]) == 0;
        if (known) continue;
        if (!(m->flag & 2)) rc = chat_rerr(r, at, HL_EINVAL, "macro '%s' takes no keyword argument '%s'", mname, kwn[k]);
        else if (cv_dict_set(extra_kw, cv_str_cstr(kwn[k]), cv_ref(kwv[k]))) rc = oom(r);
    }
    if (!rc && (m->flag & 2)) rc = chat_scope_set(ms, "kwargs", cv_ref(extra_kw)) ? oom(r) : 0;
    cv_unref(extra_kw);
    if (!rc && (m->flag & 1)) {
        cv va = cv_list_new(0);
        if (va.t != CV_LIST) rc = oom(r);
        else {
            va.u.l->tuple = 1;
            for (int i = m->n_kw; i < nargs; i++) cv_list_push(va, cv_ref(args[i]));
            rc = chat_scope_set(ms, "varargs", va) ? oom(r) : 0;
        }
    }
    if (!rc && caller) {
        cv c = {CV_MACRO, {0}};
        c.u.macro = caller;
        rc = chat_scope_set(ms, "caller", c) ? oom(r) : 0;
    }
    if (!rc) {
        hl_buf b = {0};
        rc = exec_body(r, ms, m->items, m->n_items, &b);
        if (rc == EXEC_BREAK || rc == EXEC_CONTINUE) rc = 0;
        if (!rc && b.oom) rc = oom(r);
        if (!rc) {
            *out = cv_str_new(b.data ? b.data : "", b.len);
            if (cv_is_oom(*out)) rc = oom(r);
        }
        hl_buf_free(&b);
    }
done:
    chat_scope_destroy(ms);
    r->depth--;
    return rc;
}

static int exec_stmt(crender *r, cscope *s, const cnode *n, hl_buf *out) {
    int rc;
    cv v;
    switch (n->k) {
    case CN_TEXT:
        hl_buf_append(out, n->val.u.s->data, n->val.u.s->len);
        return chat_check_out(r, n, out);
    case CN_OUTPUT:
        if ((rc = chat_ev(r, s, n->a, &v))) return rc;
        cv_to_str(out, v);
        cv_unref(v);
        return chat_check_out(r, n, out);
    case CN_IF: /* elif chains are nested ifs in the else body */
        if ((rc = chat_ev(r, s, n->a, &v))) return rc;
        int t = cv_truthy(v);
        cv_unref(v);
        if (t) return exec_body(r, s, n->items, n->n_items, out);
        return n->d ? exec_body(r, s, n->d->items, n->d->n_items, out) : 0;
    case CN_FOR: return exec_for(r, s, n, out);
    case CN_SET: return exec_set(r, s, n);
    case CN_SETBLOCK:
        if ((rc = capture(r, s, n, &v))) return rc;
        if (n->c) {
            cv f;
            rc = chat_apply_filters(r, s, n->c, v, &f);
            cv_unref(v);
            if (rc) return rc;
            v = f;
        }
        return chat_scope_set(s, n->kw_names[0], v) ? oom(r) : 0;
    case CN_MACRO:
        v.t = CV_MACRO;
        v.u.macro = n;
        return chat_scope_set(s, n->name, v) ? oom(r) : 0;
    case CN_CALLBLOCK: {
        const cnode *call = n->a;
        cv callee;
        if ((rc = chat_ev(r, s, call->a, &callee))) return rc;
        if (callee.t != CV_MACRO) {
            cv_unref(callee);
            return chat_rerr(r, n, HL_EINVAL, "{%% call %%} needs a macro");
        }
        cv args[16], kws[16];
        int na = 0, nk = 0;
        if (call->n_items > 16 || call->n_kw > 16) return chat_rerr(r, n, HL_ENOTSUP, "too many arguments");
        for (int i = 0; i < call->n_items && !rc; i++)
            if (!(rc = chat_ev(r, s, call->items[i], &args[na]))) na++;
        for (int i = 0; i < call->n_kw && !rc; i++)
            if (!(rc = chat_ev(r, s, call->kw_vals[i], &kws[nk]))) nk++;
        cscope *saved = r->caller_scope;
        r->caller_scope = s;
        if (!rc) rc = chat_call_macro(r, n, callee.u.macro, args, na, call->kw_names, kws, nk, n, &v);
        r->caller_scope = saved;
        for (int i = 0; i < na; i++) cv_unref(args[i]);
        for (int i = 0; i < nk; i++) cv_unref(kws[i]);
        if (rc) return rc;
        cv_to_str(out, v);
        cv_unref(v);
        return chat_check_out(r, n, out);
    }
    case CN_FILTERBLOCK: {
        if ((rc = capture(r, s, n, &v))) return rc;
        cv f;
        rc = chat_apply_filters(r, s, n->a, v, &f);
        cv_unref(v);
        if (rc) return rc;
        cv_to_str(out, f);
        cv_unref(f);
        return chat_check_out(r, n, out);
    }
    case CN_GENERATION: { /* transformers implements it as a call block: its own scope */
        cscope *inner = chat_scope_new(s);
        if (!inner) return oom(r);
        rc = exec_body(r, inner, n->items, n->n_items, out);
        chat_scope_destroy(inner);
        return rc;
    }
    case CN_WITH: { /* values are computed in the outer scope, then bound in a new one */
        cscope *ws = chat_scope_new(s);
        if (!ws) return oom(r);
        rc = 0;
        for (int i = 0; i < n->n_kw && !rc; i++)
            if (!(rc = chat_ev(r, s, n->kw_vals[i], &v))) rc = chat_scope_set(ws, n->kw_names[i], v) ? oom(r) : 0;
        if (!rc) rc = exec_body(r, ws, n->items, n->n_items, out);
        chat_scope_destroy(ws);
        return rc;
    }
    case CN_BREAK: return EXEC_BREAK;
    case CN_CONTINUE: return EXEC_CONTINUE;
    case CN_BODY: return exec_body(r, s, n->items, n->n_items, out);
    default: return chat_rerr(r, n, HL_EINVAL, "internal: node %d is not a statement", (int)n->k);
    }
}

static int exec_body(crender *r, cscope *s, cnode *const *items, int n, hl_buf *out) {
    for (int i = 0; i < n; i++) {
        int rc = exec_stmt(r, s, items[i], out);
        if (rc) return rc;
    }
    return 0;
}

int chat_eval_render(crender *r, const cnode *body, hl_buf *out) {
    int rc = exec_body(r, r->root, body->items, body->n_items, out);
    if (rc > 0) rc = 0; /* break/continue outside a loop cannot parse; defensive */
    return rc;
}
