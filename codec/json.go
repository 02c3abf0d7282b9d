package codec

import (
	"encoding/json"
	"fmt"
)

// JSON returns a codec over encoding/json.
//
// It is the choice for values other programs read too. What survives a round
// trip is what encoding/json preserves: a nil slice or map becomes null and
// decodes back to nil, an empty one stays empty; time.Time keeps its instant
// and its UTC offset but not its *time.Location name nor its monotonic clock
// reading; numbers decoded into an interface{} become float64.
//
// encoding/json has no declared lengths to lie about: it validates the whole
// input before decoding and allocates as it reads, so memory grows with the
// payload, never with a number written inside it. Decoding many small
// elements into large element types still amplifies (see MsgPack).
func JSON[V any]() Codec[V] { return jsonCodec[V]{} }

type jsonCodec[V any] struct{}

func (jsonCodec[V]) Marshal(v V) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: json: %w", ErrEncode, err)
	}
	return b, nil
}

func (jsonCodec[V]) Unmarshal(data []byte, v *V) error {
	// Start from the zero value: encoding/json merges into what *v holds,
	// and a cached value must not depend on the caller's leftovers.
	var zero V
	*v = zero
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: json: %w", ErrDecode, err)
	}
	return nil
}
