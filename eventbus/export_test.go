package eventbus

// Exported for the black-box tests: the hand-written JSON is checked against encoding/json.
var (
	ExportAppendString     = appendString
	ExportAppendCloudEvent = appendCloudEvent
	ExportWithheldFields   = withheldFields
)
