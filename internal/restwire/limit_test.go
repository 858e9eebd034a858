package restwire

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// DecodeMessagesLimited keeps to its budget and its context on both paths:
// the fast one, and encoding/json's (taken here because the first record
// repeats a field).
func TestDecodeMessagesLimited(t *testing.T) {
	const n = 10_000
	empties := strings.Repeat(`,{}`, n)
	headers := strings.Repeat(`{},`, n) + `{}`
	bodies := map[string]string{
		"fast records":    `[{}` + empties + `]`,
		"std records":     `[{"topic":"a","topic":"a"}` + empties + `]`,
		"fast headers":    `[{"topic":"a","headers":[` + headers + `]}]`,
		"std headers":     `[{"topic":"a","topic":"a","headers":[` + headers + `]}]`,
		"std one element": `[{"key":"k","key":"k","headers":[` + headers + `]}` + empties + `]`,
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeMessagesLimited(t.Context(), []byte(body), 64*RecordCost)
			require.ErrorIs(t, err, ErrBudget)

			_, err = DecodeMessagesLimited(cancelled, []byte(body), 0)
			if strings.Contains(name, "headers") && !strings.Contains(name, "one element") {
				require.NoError(t, err, "one record: no check of the context is due") // the budget bounds it
			} else {
				require.ErrorIs(t, err, context.Canceled)
			}

			got, err := DecodeMessagesLimited(t.Context(), []byte(body), 100*n*RecordCost)
			require.NoError(t, err)
			var ws []ConsumedMessage
			require.NoError(t, json.Unmarshal([]byte(body), &ws))
			assert.Equal(t, Messages(ws), got)
		})
	}
}
