package upstash

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

// break3: the decode budget's encoding/json fallback charges HeaderCost for
// every '{' byte of a record, including the '{' inside its key and value
// strings. A legitimate answer that takes the fallback (an Upstash-compatible
// server that writes a keyless record's key as null, as Confluent's REST
// proxy does, or that escapes non-ASCII as \u surrogate pairs, as Python's
// json.dumps does by default) with one record whose value is a JSON document
// dense in '{' (here a ~600 KB array of empty objects, well under the 1 MiB
// record limit) is refused with ErrBudget: 32 bytes charged per 3 bytes read
// against a budget of 4 per byte plus 1 MiB. The same record with key ""
// (fast path) decodes.
func TestBreak3DecodeBudgetCountsBracesInValues(t *testing.T) {
	value := "[" + strings.TrimSuffix(strings.Repeat("{},", 200_000), ",") + "]"
	cases := map[string]string{
		"fast path (key \"\")":        `[{"topic":"orders","partition":0,"offset":5,"key":"","value":"` + value + `"}]`,
		"key null":                    `[{"topic":"orders","partition":0,"offset":5,"key":null,"value":"` + value + `"}]`,
		"surrogate-escaped emoji key": `[{"topic":"orders","partition":0,"offset":5,"key":"\ud83d\ude00","value":"` + value + `"}]`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			s := hostile(t, answers(map[string]string{
				"/consume/":         body,
				"/commit/":          `{"result":"Success","status":200}`,
				"/delete-consumer/": `{"result":"Success","status":200}`,
			}))
			tr := hostileTransport(t, s)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			c, err := tr.Subscribe(ctx, transport.Subscription{Group: "g", Topics: []string{"orders"}})
			require.NoError(t, err, "a legitimate answer with one record of a 600 KB JSON value")
			defer c.Close()
		})
	}
}
