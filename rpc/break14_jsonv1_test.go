//go:build !goexperiment.jsonv2

package rpc

// b14JSONv2 reports whether encoding/json runs on encoding/json/v2
// (GOEXPERIMENT=jsonv2), where jsonplan gives no type a plan.
const b14JSONv2 = false
