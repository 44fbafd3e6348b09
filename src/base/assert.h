/* Assertions of programmer error (never of input): report the expression, file
 * and line, then abort. Enabled in every build mode: the checks guard
 * invariants whose violation would otherwise corrupt memory. */
#ifndef HL_BASE_ASSERT_H
#define HL_BASE_ASSERT_H

_Noreturn void hl_assert_fail(const char *expr, const char *file, int line);

#define HL_ASSERT(e) ((e) ? (void)0 : hl_assert_fail(#e, __FILE__, __LINE__))
/* A branch that cannot happen: marks defensive code as such. */
#define HL_UNREACHABLE() hl_assert_fail("unreachable", __FILE__, __LINE__)

#endif
