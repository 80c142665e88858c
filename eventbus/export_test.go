package eventbus

import (
	"context"

	"github.com/idlog/idlog/eventstore"
)

// Exported for the black-box tests: the hand-written JSON is checked against encoding/json.
var (
	ExportAppendString     = appendString
	ExportAppendCloudEvent = appendCloudEvent
	// Unsigned, as a forger without the key writes it.
	ExportAppendUnsignedCloudEvent = appendUnsignedCloudEvent
	ExportWithheldFields           = withheldFields
	ExportAppendData               = appendData
)

// ExportSignBatch signs msgs as the relay does, a batch at a time: their idlogsignature values.
func ExportSignBatch(s *EventSigner, msgs [][]byte) [][]byte {
	out := make([][]byte, len(msgs))
	s.appendBatchSignatures(nil, out, msgs)
	return out
}

// ExportBatchStatement is what a batch's signature signs.
var ExportBatchStatement = batchStatement

// signedMessageExtra is how much longer the signature member makes a message, at most: 64 bytes
// in unpadded base64, a batch's inclusion path, and '"'.
const signedMessageExtra = len(signatureMember) + 86 + batchProofText + 1

// ExportSignBody returns unsigned, a body as appendUnsignedCloudEvent writes it, signed by s as
// the relay signs it, in a new buffer.
func ExportSignBody(s *EventSigner, unsigned []byte) []byte {
	b := make([]byte, 0, len(unsigned)+len(s.kid)+len(`,"idlogkeyid":""`)+signedMessageExtra)
	return s.appendSignature(append(b, unsigned...), 0)
}

// ExportEncodeBatch encodes batch as the relay publishes it: message bodies, in order.
func ExportEncodeBatch(s *EventSigner, source string, batch []eventstore.Event) [][]byte {
	en := encoder{signer: s, source: source}
	w := en.start(batch)
	defer w.stop()
	out := make([][]byte, len(batch))
	for i := range batch {
		m, err := w.wait(context.Background(), i)
		if err != nil {
			panic(err)
		}
		out[i] = m.Data
	}
	return out
}
