//go:build !goexperiment.jsonv2

package jsonplan

// jsonV2 reports whether encoding/json is built on encoding/json/v2
// (GOEXPERIMENT=jsonv2). Here it is not: encoding/json is v1, whose rules
// the plan copies.
const jsonV2 = false
