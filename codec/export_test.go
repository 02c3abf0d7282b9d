package codec

// NewMsgPackScanner exposes the MessagePack pre-scan to the black-box tests
// and benchmarks: the returned function validates a payload the way
// MsgPack.Unmarshal does before decoding, reusing one scanner.
func NewMsgPackScanner() func(data []byte) error {
	s := new(scanner)
	return s.check
}

// MsgPackTraps returns the offsets of the extension bodies the decoder is
// kept from reading as values, for payloads that pass the scan.
func MsgPackTraps(data []byte) ([]int, error) {
	s := new(scanner)
	err := s.check(data)
	return s.traps, err
}
