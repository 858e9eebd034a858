package jsonplan

import (
	"reflect"
	"testing"
)

// Built with GOEXPERIMENT=jsonv2, encoding/json is encoding/json/v2 in v1
// mode, and its rules are not the ones the plan copies: a tag name that v1
// ignores for being invalid (`json:"a\\b"`, `json:"\u00a0"`, `json:"x\""`)
// names the field there, so a key the plan takes for the Go name (or for
// no field) decodes elsewhere, or fails. Whatever encoding/json is built
// on, what the plan takes must be json.Unmarshal's.

type b14BadTags struct {
	Bad   string `json:"a\\b"`
	NBSP  int    `json:"\u00a0"`
	Quote int    `json:"x\""`
}

func TestBreak14InvalidTagNames(t *testing.T) {
	typ := reflect.TypeFor[b14BadTags]()
	p := For(typ)
	if p == nil {
		return // no plan: encoding/json decodes every payload
	}
	for _, in := range []string{
		`{"a":"x"}`, `{"Bad":"x"}`, `{"a\\b":"x"}`, `{"NBSP":1}`, "{\"\u00a0\":1}", `{"Quote":1}`, `{"x":1}`,
	} {
		b14Check(t, typ, p, []byte(in))
	}
}
