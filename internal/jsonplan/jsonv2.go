//go:build goexperiment.jsonv2

package jsonplan

// jsonV2 reports whether encoding/json is built on encoding/json/v2
// (GOEXPERIMENT=jsonv2). Here it is: its rules are not the ones the plan
// copies (a tag name v1 ignores as invalid names the field in v2, for one),
// so For gives no plan and encoding/json decodes everything.
const jsonV2 = true
