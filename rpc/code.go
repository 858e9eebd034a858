package rpc

import (
	"fmt"
	"strconv"
)

// Code classifies an error, with the names and numbers of gRPC and Connect
// status codes. The zero value is not a valid code; an *Error always carries
// one of the constants below.
type Code uint32

// The codes, numbered as in gRPC.
const (
	CodeCanceled           Code = 1
	CodeUnknown            Code = 2
	CodeInvalidArgument    Code = 3
	CodeDeadlineExceeded   Code = 4
	CodeNotFound           Code = 5
	CodeAlreadyExists      Code = 6
	CodePermissionDenied   Code = 7
	CodeResourceExhausted  Code = 8
	CodeFailedPrecondition Code = 9
	CodeAborted            Code = 10
	CodeOutOfRange         Code = 11
	CodeUnimplemented      Code = 12
	CodeInternal           Code = 13
	CodeUnavailable        Code = 14
	CodeDataLoss           Code = 15
	CodeUnauthenticated    Code = 16

	minCode = CodeCanceled
	maxCode = CodeUnauthenticated
)

var codeNames = [...]string{
	CodeCanceled:           "canceled",
	CodeUnknown:            "unknown",
	CodeInvalidArgument:    "invalid_argument",
	CodeDeadlineExceeded:   "deadline_exceeded",
	CodeNotFound:           "not_found",
	CodeAlreadyExists:      "already_exists",
	CodePermissionDenied:   "permission_denied",
	CodeResourceExhausted:  "resource_exhausted",
	CodeFailedPrecondition: "failed_precondition",
	CodeAborted:            "aborted",
	CodeOutOfRange:         "out_of_range",
	CodeUnimplemented:      "unimplemented",
	CodeInternal:           "internal",
	CodeUnavailable:        "unavailable",
	CodeDataLoss:           "data_loss",
	CodeUnauthenticated:    "unauthenticated",
}

// String returns the code's wire name, such as "invalid_argument". An
// unknown value prints as "code_N".
func (c Code) String() string {
	if c >= minCode && c <= maxCode {
		return codeNames[c]
	}
	return "code_" + strconv.FormatUint(uint64(c), 10)
}

// MarshalText encodes the code as its wire name.
func (c Code) MarshalText() ([]byte, error) {
	return []byte(c.String()), nil
}

// UnmarshalText parses a wire name, as written by MarshalText, including the
// "code_N" form.
func (c *Code) UnmarshalText(b []byte) error {
	code, err := ParseCode(string(b))
	if err != nil {
		return err
	}
	*c = code
	return nil
}

// ParseCode parses a code's wire name. It returns an error for names it does
// not know.
func ParseCode(s string) (Code, error) {
	for c := minCode; c <= maxCode; c++ {
		if codeNames[c] == s {
			return c, nil
		}
	}
	if len(s) > 5 && s[:5] == "code_" {
		n, err := strconv.ParseUint(s[5:], 10, 32)
		if err == nil && n > 0 {
			return Code(n), nil
		}
	}
	return 0, fmt.Errorf("rpc: unknown code %q", s)
}
