package streamstore

import "fmt"

// Kind classifies a store error the way Kinesis classifies its exceptions,
// so that the API layer can answer with the matching error type and
// clients retry only what is worth retrying.
type Kind int

// The kinds of store errors. Their String is the Kinesis exception name.
const (
	KindInternal           Kind = iota // InternalFailure: an I/O error; retry later
	KindNotFound                       // ResourceNotFoundException
	KindInUse                          // ResourceInUseException
	KindInvalidArgument                // InvalidArgumentException
	KindLimitExceeded                  // LimitExceededException
	KindThroughputExceeded             // ProvisionedThroughputExceededException
	KindReadOnly                       // the store was opened read-only
	KindValidation                     // ValidationException: the call does not apply to the stream's mode
)

func (k Kind) String() string {
	switch k {
	case KindNotFound:
		return "ResourceNotFoundException"
	case KindInUse:
		return "ResourceInUseException"
	case KindInvalidArgument:
		return "InvalidArgumentException"
	case KindLimitExceeded:
		return "LimitExceededException"
	case KindThroughputExceeded:
		return "ProvisionedThroughputExceededException"
	case KindReadOnly:
		return "AccessDeniedException"
	case KindValidation:
		return "ValidationException"
	default:
		return "InternalFailure"
	}
}

// Error is an error of the store with its kind. Message is written for the
// client that made the call, in the words Kinesis uses.
type Error struct {
	Kind    Kind
	Message string
	// Err is the underlying cause of an internal failure, if any.
	Err error
	// MissingStream is the stream a KindNotFound error did not find (""
	// when what was missing is a shard or something else).
	MissingStream string
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &Error{Kind: k}) match any error of kind k.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Kind == e.Kind
}

func errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

func internal(err error, format string, args ...any) *Error {
	return &Error{Kind: KindInternal, Message: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the kind of err: that of the *Error it wraps, or
// KindInternal.
func KindOf(err error) Kind {
	for err != nil {
		if e, ok := err.(*Error); ok {
			return e.Kind
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			break
		}
		err = u.Unwrap()
	}
	return KindInternal
}
