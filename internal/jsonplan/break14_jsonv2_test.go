//go:build goexperiment.jsonv2

package jsonplan

import (
	"reflect"
	"testing"
)

// Built with GOEXPERIMENT=jsonv2, encoding/json runs on encoding/json/v2,
// whose rules are not the ones the plan copies (the v1 tests, which need
// plans, are built without the experiment only): no type gets a plan, and
// every payload is encoding/json's.

type b14V2Plain struct {
	ID   int      `json:"id"`
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

type b14V2BadTags struct {
	//lint:ignore SA5008 a tag v1 ignores (the Go name counts), on purpose
	Bad string `json:"a\\b"`
}

func TestBreak14NoPlanOnJSONv2(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[b14V2Plain](), reflect.TypeFor[b14V2BadTags](), reflect.TypeFor[struct{}](),
		reflect.TypeFor[struct{ A *b14V2Plain }](),
	} {
		if For(typ) != nil {
			t.Errorf("%v has a plan under GOEXPERIMENT=jsonv2", typ)
		}
	}
}
