/* The tool-call markers the families write, shared by the output parser
 * (outparse.c) and the call syntax table (callsyntax.c), so the text a
 * forced call is made of and the text the parser looks for are one string.
 * DeepSeek's use fullwidth bars (U+FF5C) and U+2581 for spaces. */
#ifndef HL_CHAT_MARKERS_H
#define HL_CHAT_MARKERS_H

#define CHAT_DS_CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define CHAT_DS_CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define CHAT_DS_CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define CHAT_DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define CHAT_DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"

#define CHAT_TOOL_CALL_OPEN "<tool_call>"
#define CHAT_TOOL_CALL_CLOSE "</tool_call>"
#define CHAT_PYTHON_TAG "<|python_tag|>"
#define CHAT_MISTRAL_CALLS "[TOOL_CALLS]"
/* Qwen3-Coder's XML inside <tool_call> */
#define CHAT_XML_FUNCTION "<function="
#define CHAT_XML_FUNCTION_END "</function>"
#define CHAT_XML_PARAM "<parameter="
#define CHAT_XML_PARAM_END "</parameter>"
/* gpt-oss's harmony format: <|start|>ROLE<|channel|>CHANNEL[ to=RECIPIENT]
 * [ <|constrain|>TYPE]<|message|>BODY<|end|> (<|return|> / <|call|> end the
 * last message, and generation) */
#define CHAT_H_START "<|start|>"
#define CHAT_H_CHANNEL "<|channel|>"
#define CHAT_H_CONSTRAIN "<|constrain|>"
#define CHAT_H_MESSAGE "<|message|>"
#define CHAT_H_END "<|end|>"
#define CHAT_H_RETURN "<|return|>"
#define CHAT_H_CALL "<|call|>"

#endif
