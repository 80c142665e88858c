package eventbus

// Exported for the black-box tests: the hand-written JSON is checked against encoding/json.
var (
	ExportAppendString     = appendString
	ExportAppendCloudEvent = appendCloudEvent
	// Unsigned, as a forger without the key writes it.
	ExportAppendUnsignedCloudEvent = appendUnsignedCloudEvent
	ExportWithheldFields           = withheldFields
)
