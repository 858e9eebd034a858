//go:build !goexperiment.jsonv2

package jsonplan

import (
	"encoding/json"
	"testing"
)

type benchSmall struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

type benchInner struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

type benchNested struct {
	ID      int64        `json:"id"`
	Name    string       `json:"name"`
	Email   string       `json:"email,omitempty"`
	Active  bool         `json:"active"`
	Tags    []string     `json:"tags"`
	Owner   *benchInner  `json:"owner"`
	Members []benchInner `json:"members"`
	Ratio   float32      `json:"ratio"`
	Count   uint32       `json:"count,omitempty"`
}

var benchValues = map[string]any{
	"small": benchSmall{ID: 12345, Name: "widget"},
	"nested": benchNested{
		ID: 987654321, Name: "project <alpha>", Email: "a@example.com", Active: true,
		Tags: []string{"go", "kafka", "rpc"}, Owner: &benchInner{Name: "ann", Score: 0.75},
		Members: []benchInner{{"bob", 12.5}, {"cy", 1e-7}}, Ratio: 0.333, Count: 7,
	},
}

// BenchmarkMarshal compares Marshal with json.Marshal on a small and a
// nested struct.
func BenchmarkMarshal(b *testing.B) {
	for _, name := range []string{"small", "nested"} {
		v := benchValues[name]
		b.Run(name+"/jsonplan", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := Marshal(v); !ok {
					b.Fatal("refused")
				}
			}
		})
		b.Run(name+"/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
