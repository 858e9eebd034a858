package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Error is an error with a Code, the form in which handler errors travel
// back to callers: the code and message in the reply's headers, the details
// (JSON, optional) in its value.
//
// Its fields are read through Code, Message and Details, and set only by
// its constructors (NewError, Errorf, WithDetails), so an *Error always
// carries one of the Code constants. Use the constructors: a zero Error
// has no valid code. An *Error is immutable and safe for concurrent use.
//
// Every error a Client returns for a call is an *Error or wraps one of the
// sentinels below; use errors.As, or CodeOf for the code alone.
type Error struct {
	code    Code
	message string
	details json.RawMessage

	cause error
}

// NewError returns an *Error with code c wrapping err. The message is
// err.Error(); errors.Is and errors.As see err through Unwrap. A code that
// is not one of the Code constants becomes CodeUnknown.
func NewError(c Code, err error) *Error {
	e := &Error{code: validCode(c), cause: err}
	if err != nil {
		e.message = err.Error()
	}
	return e
}

// Errorf returns an *Error with code c and a formatted message. A %w verb
// wraps its operand as with fmt.Errorf. A code that is not one of the Code
// constants becomes CodeUnknown.
func Errorf(c Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{code: validCode(c), message: err.Error(), cause: err}
}

// WithDetails returns a copy of e that carries details, JSON sent to the
// caller in the error reply's value (for example which resource was
// locked). details must be valid JSON; nil removes them.
func (e *Error) WithDetails(details json.RawMessage) *Error {
	c := *e
	c.details = details
	return &c
}

// Code returns the error's code, CodeUnknown for a nil *Error.
func (e *Error) Code() Code {
	if e == nil {
		return CodeUnknown
	}
	return e.code
}

// Message returns the error's message, without the code.
func (e *Error) Message() string {
	if e == nil {
		return ""
	}
	return e.message
}

// Details returns the JSON details the error carries, or nil.
func (e *Error) Details() json.RawMessage {
	if e == nil {
		return nil
	}
	return e.details
}

// Error returns "<code>: <message>".
func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	if e.message == "" {
		return e.code.String()
	}
	return e.code.String() + ": " + e.message
}

// Unwrap returns the wrapped error, if any.
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.cause
}

// CodeOf returns the code of err: the Code of the first *Error in its chain,
// CodeCanceled or CodeDeadlineExceeded for context errors, CodeUnavailable
// for ErrClosed, and CodeUnknown for anything else (including nil's absence
// of a code: CodeOf(nil) is CodeUnknown).
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.code
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, ErrClosed), errors.Is(err, transport.ErrClosed):
		return CodeUnavailable
	}
	return CodeUnknown
}

var (
	// ErrClosed is returned by calls on a closed Client or Server, and by
	// calls still waiting when their Client is closed.
	ErrClosed = errors.New("rpc: closed")

	// ErrServing is returned by Server.Serve when the server is already
	// serving: a Server serves one Serve at a time, and may serve again
	// once that Serve has returned.
	ErrServing = errors.New("rpc: Serve: already serving")

	// ErrNoReplies is wrapped by the error of a Call on a client made
	// WithoutReplies, which reads no reply topic.
	ErrNoReplies = errors.New("rpc: the client reads no replies (WithoutReplies)")

	// ErrTimeout is wrapped by the error of a call whose deadline passed
	// before its reply arrived. It wraps context.DeadlineExceeded, so
	// errors.Is(err, context.DeadlineExceeded) holds too.
	ErrTimeout error = timeoutError{}
)

type timeoutError struct{}

func (timeoutError) Error() string { return "rpc: call timed out" }
func (timeoutError) Unwrap() error { return context.DeadlineExceeded }

// callTimedOut is the error of a call on topic whose deadline passed
// while it waited for its reply.
func callTimedOut(topic string) error {
	return NewError(CodeDeadlineExceeded, callTimeout{topic})
}

// callTimeout says, once, which call timed out; it is ErrTimeout and
// wraps context.DeadlineExceeded. (Wrapped in turn, the message read
// "rpc: call timed out: rpc: call reports: context deadline exceeded".)
type callTimeout struct{ topic string }

func (e callTimeout) Error() string {
	return "rpc: call " + e.topic + ": no reply before the deadline (" + context.DeadlineExceeded.Error() + ")"
}
func (callTimeout) Is(target error) bool { return target == ErrTimeout }
func (callTimeout) Unwrap() error        { return context.DeadlineExceeded }

// callEnded is the error of a call on topic whose context ended with err:
// a deadline reads as the call's own (callTimedOut), whichever set it.
func callEnded(topic string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return callTimedOut(topic)
	}
	return wrapCallErr(fmt.Errorf("rpc: call %s: %w", topic, err))
}

// callClosed is the error of a call on topic ended by Client.Close.
func callClosed(topic string) error {
	return NewError(CodeUnavailable, fmt.Errorf("rpc: call %s: %w", topic, ErrClosed))
}

// wrapCallErr is the one boundary where context and transport errors become
// *Error values with codes.
func wrapCallErr(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		if !errors.Is(err, ErrTimeout) {
			err = fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return NewError(CodeDeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return NewError(CodeCanceled, err)
	case errors.Is(err, ErrClosed), errors.Is(err, transport.ErrClosed):
		return NewError(CodeUnavailable, err)
	case errors.Is(err, transport.ErrUnauthenticated):
		return NewError(CodeUnauthenticated, err)
	case errors.Is(err, transport.ErrPermissionDenied):
		return NewError(CodePermissionDenied, err)
	case errors.Is(err, transport.ErrUnknownTopic):
		return NewError(CodeNotFound, err)
	case errors.Is(err, transport.ErrMessageTooLarge):
		return NewError(CodeResourceExhausted, err)
	case errors.Is(err, transport.ErrInvalid):
		return NewError(CodeInvalidArgument, err)
	}
	return NewError(CodeUnavailable, err)
}

// handlerErr turns what a handler returned into an *Error for the reply.
func handlerErr(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return NewError(CodeDeadlineExceeded, err)
	case errors.Is(err, context.Canceled):
		return NewError(CodeCanceled, err)
	}
	return NewError(CodeUnknown, err)
}

// validCode returns c if it is one of the Code constants, else CodeUnknown.
func validCode(c Code) Code {
	if c < minCode || c > maxCode {
		return CodeUnknown
	}
	return c
}
