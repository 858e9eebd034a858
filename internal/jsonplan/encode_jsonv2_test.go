//go:build goexperiment.jsonv2

package jsonplan

import (
	"reflect"
	"testing"
)

// Built with GOEXPERIMENT=jsonv2, encoding/json's Marshal is v2's in v1
// mode, whose rules the encoder does not copy: no type gets an encoder,
// and Marshal leaves every value to json.Marshal.
func TestNoEncoderOnJSONv2(t *testing.T) {
	type plain struct {
		ID   int      `json:"id"`
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	for _, v := range []any{plain{}, &plain{}, struct{}{}, struct{ P *plain }{}} {
		if EncoderFor(reflect.TypeOf(v)) != nil {
			t.Errorf("%T has an encoder under GOEXPERIMENT=jsonv2", v)
		}
		if b, ok := Marshal(v); ok || b != nil {
			t.Errorf("Marshal(%T) = %q, %v under GOEXPERIMENT=jsonv2", v, b, ok)
		}
	}
}
