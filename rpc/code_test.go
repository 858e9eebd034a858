package rpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kafkarpc/kafkarpc/transport"
)

func TestCodeTextRoundTrip(t *testing.T) {
	for c := minCode; c <= maxCode; c++ {
		b, err := c.MarshalText()
		require.NoError(t, err)
		var back Code
		require.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, c, back, string(b))
	}
	assert.Equal(t, "invalid_argument", CodeInvalidArgument.String())
	assert.Equal(t, "code_99", Code(99).String())
	c, err := ParseCode("code_99")
	require.NoError(t, err)
	assert.Equal(t, Code(99), c)
	_, err = ParseCode("teapot")
	assert.ErrorContains(t, err, `unknown code "teapot"`)
	_, err = ParseCode("code_0")
	assert.Error(t, err)
}

func TestErrorWrapping(t *testing.T) {
	base := errors.New("no rows")
	e := NewError(CodeNotFound, base)
	assert.Equal(t, "not_found: no rows", e.Error())
	assert.ErrorIs(t, e, base)
	assert.Equal(t, CodeNotFound, CodeOf(fmt.Errorf("outer: %w", e)))

	e = Errorf(CodeInvalidArgument, "range %d..%d: %w", 2, 1, base)
	assert.Equal(t, "invalid_argument: range 2..1: no rows", e.Error())
	assert.ErrorIs(t, e, base)

	assert.Equal(t, CodeDeadlineExceeded, CodeOf(context.DeadlineExceeded))
	assert.Equal(t, CodeCanceled, CodeOf(context.Canceled))
	assert.Equal(t, CodeUnavailable, CodeOf(ErrClosed))
	assert.Equal(t, CodeUnknown, CodeOf(errors.New("x")))
	assert.Equal(t, "internal", (&Error{code: CodeInternal}).Error())
}

func TestWrapCallErr(t *testing.T) {
	for _, tc := range []struct {
		in   error
		code Code
		is   []error
	}{
		{context.DeadlineExceeded, CodeDeadlineExceeded, []error{ErrTimeout, context.DeadlineExceeded}},
		{fmt.Errorf("x: %w", context.Canceled), CodeCanceled, []error{context.Canceled}},
		{transport.ErrClosed, CodeUnavailable, []error{transport.ErrClosed}},
		{fmt.Errorf("produce: %w", transport.ErrUnknownTopic), CodeNotFound, []error{transport.ErrUnknownTopic}},
		{transport.ErrMessageTooLarge, CodeResourceExhausted, []error{transport.ErrMessageTooLarge}},
		{transport.ErrInvalid, CodeInvalidArgument, nil},
		{errors.New("connection reset"), CodeUnavailable, nil},
	} {
		err := wrapCallErr(tc.in)
		var e *Error
		require.True(t, errors.As(err, &e), "%v", tc.in)
		assert.Equal(t, tc.code, e.Code(), "%v", tc.in)
		for _, target := range tc.is {
			assert.ErrorIs(t, err, target)
		}
	}
	assert.NoError(t, wrapCallErr(nil))
}

func TestHandlerErr(t *testing.T) {
	assert.Equal(t, CodeUnknown, handlerErr(errors.New("boom")).Code())
	assert.Equal(t, CodeDeadlineExceeded, handlerErr(context.DeadlineExceeded).Code())
	assert.Equal(t, CodeCanceled, handlerErr(context.Canceled).Code())
	own := Errorf(CodeAborted, "conflict")
	assert.Same(t, own, handlerErr(fmt.Errorf("wrapped: %w", own)))
}

// A reply with rpc-error but no rpc-error-code is an error, not a success.
func TestReplyWithErrorButNoCode(t *testing.T) {
	m := &transport.Message{Headers: []transport.Header{
		{Key: HeaderVersion, Value: ProtocolVersion}, {Key: HeaderID, Value: "r1"}, {Key: HeaderKind, Value: string(KindReply)},
		{Key: HeaderCorrelationID, Value: "q1"}, {Key: HeaderError, Value: "boom"},
	}}
	env, err := decodeEnvelope(m)
	require.NoError(t, err)
	r := replyFrom(m, &env)
	require.NotNil(t, r.Err)
	assert.Equal(t, CodeUnknown, r.Err.Code())
	assert.Equal(t, "boom", r.Err.Message())
}

// Refused credentials are unauthenticated and forbidden operations are
// permission_denied, whatever the transport, and neither is retried.
func TestWrapCallErrCredentials(t *testing.T) {
	assert.Equal(t, CodeUnauthenticated, CodeOf(wrapCallErr(fmt.Errorf("x: %w", transport.ErrUnauthenticated))))
	assert.Equal(t, CodePermissionDenied, CodeOf(wrapCallErr(fmt.Errorf("x: %w", transport.ErrPermissionDenied))))
	assert.True(t, permanentProduceErr(transport.ErrUnauthenticated))
	assert.True(t, permanentProduceErr(transport.ErrPermissionDenied))
}
