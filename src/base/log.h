/* Logging to stderr with levels. The level is process-wide (set once by main
 * from flags or HYPERLAMA_DEBUG); everything else is passed explicitly. */
#ifndef HL_BASE_LOG_H
#define HL_BASE_LOG_H

typedef enum { HL_LOG_DEBUG, HL_LOG_INFO, HL_LOG_WARN, HL_LOG_ERROR, HL_LOG_OFF } hl_log_level;

void hl_log_set_level(hl_log_level level);
hl_log_level hl_log_get_level(void);
/* json: one JSON object per line instead of the human-readable format */
void hl_log_set_json(int json);
void hl_log(hl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hl_debug(...) hl_log(HL_LOG_DEBUG, __VA_ARGS__)
#define hl_info(...) hl_log(HL_LOG_INFO, __VA_ARGS__)
#define hl_warn(...) hl_log(HL_LOG_WARN, __VA_ARGS__)
#define hl_error(...) hl_log(HL_LOG_ERROR, __VA_ARGS__)

#endif
