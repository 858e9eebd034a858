package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Error is an error with a Code, the form in which handler errors travel
// back to callers. Details, when set, is JSON carried in the reply's value.
//
// Every error a Client returns for a call is an *Error or wraps one of the
// sentinels below; use errors.As, or CodeOf for the code alone.
type Error struct {
	Code    Code
	Message string
	Details json.RawMessage

	cause error
}

// NewError returns an *Error with code c wrapping err. The message is
// err.Error(); errors.Is and errors.As see err through Unwrap.
func NewError(c Code, err error) *Error {
	e := &Error{Code: c, cause: err}
	if err != nil {
		e.Message = err.Error()
	}
	return e
}

// Errorf returns an *Error with code c and a formatted message. A %w verb
// wraps its operand as with fmt.Errorf.
func Errorf(c Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: c, Message: err.Error(), cause: err}
}

// Error returns "<code>: <message>".
func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
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
		return e.Code
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

	// ErrTimeout is wrapped by the error of a call whose deadline passed
	// before its reply arrived. It wraps context.DeadlineExceeded, so
	// errors.Is(err, context.DeadlineExceeded) holds too.
	ErrTimeout error = timeoutError{}
)

type timeoutError struct{}

func (timeoutError) Error() string { return "rpc: call timed out" }
func (timeoutError) Unwrap() error { return context.DeadlineExceeded }

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
