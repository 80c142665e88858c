package esdb

// Internals the black-box tests check without a server.
var (
	ExpectedRevision = expectedRevision
	CheckStreamID    = checkStreamID
	StreamRegex      = streamRegex
	Visible          = visible
	KeySets          = keySets
)
