package pipelines

import "testing"

func TestUnquotedFlowRef(t *testing.T) {
	for src, want := range map[string]string{
		"files: {dir: ${OUT}}":                 "${OUT}",
		"paths: [${A}, b]":                     "${A}",
		"- {a: 1, b: ${B:-x}}":                 "${B:-x}",
		"x: {a: {b: ${DEEP}}}":                 "${DEEP}",
		"files: {dir: \"${OUT}\"}":             "",
		"files: {dir: '${OUT}'}":               "",
		"dir: ${OUT}":                          "",
		"filter: a{b ${X}":                     "",
		"x: {a: $${LITERAL}}":                  "",
		"x: {a: 1} # {b: ${IN_COMMENT}}":       "",
		"x: {a: \"q\\\"${IN_STRING}\"}":        "",
		"x:\n  - {a: \"${Q}\", b: ${LATER}}\n": "${LATER}",
	} {
		_, got, ok := unquotedFlowRef([]byte(src))
		if got != want || ok != (want != "") {
			t.Errorf("%q: found %q (%v), want %q", src, got, ok, want)
		}
	}
}
