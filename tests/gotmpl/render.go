// Renders a Go text/template (argv[1]) over JSON data (argv[2]) with the
// functions Ollama adds (json), for comparison with our interpreter.
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

func main() {
	t, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	d, err := os.ReadFile(os.Args[2])
	if err != nil {
		panic(err)
	}
	var data any
	if err := json.Unmarshal(d, &data); err != nil {
		panic(err)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=default").Funcs(funcs).Parse(string(t))
	if err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(1)
	}
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(1)
	}
}
