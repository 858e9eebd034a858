//go:build !goexperiment.jsonv2

// The plan's tests: encoding/json v1's rules, which the plan copies (built
// with GOEXPERIMENT=jsonv2, no type gets a plan: break14_jsonv2_test.go).

package jsonplan

import (
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type textName string

func (n *textName) UnmarshalText(b []byte) error { *n = textName(b); return nil }

type jsonSelf struct{ A int }

func (s jsonSelf) UnmarshalJSON([]byte) error { return nil }

type embedded struct{ A int }

type uint8Kind uint8

type selfRef struct {
	Next *selfRef
}

type refA struct{ B []refB }

type refB struct{ A *refA }

// TestForRefuses: every type outside the plan's shapes gets no plan, so
// that encoding/json decodes it whole.
func TestForRefuses(t *testing.T) {
	refused := map[string]reflect.Type{
		"not a struct":           reflect.TypeFor[int](),
		"pointer":                reflect.TypeFor[*fzFlat](),
		"byte slice":             reflect.TypeFor[struct{ A []byte }](),
		"slice of a uint8 kind":  reflect.TypeFor[struct{ A []uint8Kind }](),
		"slice of RawMessage":    reflect.TypeFor[struct{ A []json.RawMessage }](),
		"slice of Unmarshaler":   reflect.TypeFor[struct{ A []jsonSelf }](),
		"pointer to pointer":     reflect.TypeFor[struct{ A **int }](),
		"pointer to Unmarshaler": reflect.TypeFor[struct{ A *textName }](),
		"self-referential":       reflect.TypeFor[selfRef](),
		"mutually referential":   reflect.TypeFor[refA](),
		"slice of maps":          reflect.TypeFor[struct{ A []map[string]int }](),
		"map field":              reflect.TypeFor[struct{ A map[string]int }](),
		"array field":            reflect.TypeFor[struct{ A [2]int }](),
		"interface field":        reflect.TypeFor[struct{ A any }](),
		"chan field":             reflect.TypeFor[struct{ A chan int }](),
		"func field":             reflect.TypeFor[struct{ A func() }](),
		"complex field":          reflect.TypeFor[struct{ A complex128 }](),
		"json.Number":            reflect.TypeFor[struct{ A json.Number }](),
		"json.RawMessage":        reflect.TypeFor[struct{ A json.RawMessage }](),
		"time.Time":              reflect.TypeFor[struct{ A time.Time }](),
		"TextUnmarshaler on *T":  reflect.TypeFor[struct{ A textName }](),
		"Unmarshaler struct":     reflect.TypeFor[jsonSelf](),
		"Unmarshaler field":      reflect.TypeFor[struct{ A jsonSelf }](),
		"embedded":               reflect.TypeFor[struct{ embedded }](),
		"embedded, tagged": reflect.TypeFor[struct {
			embedded `json:"e"`
		}](),
		",string": reflect.TypeFor[struct {
			A int `json:"a,omitempty,string"`
		}](),
		",string on a string": reflect.TypeFor[struct {
			A string `json:",string"`
		}](),
		"equal names": reflect.TypeFor[struct {
			A int
			B int `json:"A"`
		}](),
		"names folding alike": reflect.TypeFor[struct {
			ID int
			Id int
		}](),
		"tag folding like name": reflect.TypeFor[struct {
			A int `json:"b"`
			B int
		}](),
		"non-ASCII tag": reflect.TypeFor[struct {
			A int `json:"é"`
		}](),
		"non-ASCII Go name":     reflect.TypeFor[struct{ Ñ int }](),
		"refused nested struct": reflect.TypeFor[struct{ A struct{ B map[string]int } }](),
	}
	for name, typ := range refused {
		require.Nil(t, For(typ), name)
	}
}

// TestForAccepts: slices and pointers of accepted types get a plan.
func TestForAccepts(t *testing.T) {
	accepted := map[string]reflect.Type{
		"slices":            reflect.TypeFor[fzSlices](),
		"pointers":          reflect.TypeFor[fzPointers](),
		"same type twice":   reflect.TypeFor[struct{ A, B fzInner }](),
		"slice of slices":   reflect.TypeFor[struct{ A [][]string }](),
		"pointer to slice":  reflect.TypeFor[struct{ A *[]int }](),
		"slice of pointers": reflect.TypeFor[struct{ A []*fzInner }](),
		"named string and bool": reflect.TypeFor[struct {
			A textLike
			B flag
		}](),
	}
	for name, typ := range accepted {
		require.NotNil(t, For(typ), name)
	}
}

type textLike string

type flag bool

// TestForNames: the names a plan matches are encoding/json's.
func TestForNames(t *testing.T) {
	p := For(reflect.TypeFor[fzTags]())
	require.NotNil(t, p)
	var names []string
	for _, f := range p.fields {
		names = append(names, f.name)
	}
	require.Equal(t, []string{"-", "Empty", "renamed", "a-b.c", "Bad", "Quote", "NBSP", "with space", "k", "ss", "opts", "Other"}, names)
	require.Equal(t, reflect.TypeFor[fzTags](), p.Type())
	// Unexported fields, even of refused kinds, and "-" fields are not decoded.
	type quiet struct {
		A int
		m map[string]int
		C chan int `json:"-"`
	}
	require.NotNil(t, For(reflect.TypeFor[quiet]()))
	_ = quiet{}.m
}

// TestForConcurrent: one plan per type, however many goroutines ask first.
func TestForConcurrent(t *testing.T) {
	type fresh struct{ A, B string }
	typ := reflect.TypeFor[fresh]()
	got := make([]*Plan, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i] = For(typ) })
	}
	wg.Wait()
	for _, p := range got {
		require.Same(t, got[0], p)
	}
}
