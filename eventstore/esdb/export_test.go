package esdb

// Internals the black-box tests check without a server.
var (
	ExpectedRevision = expectedRevision
	CheckStreamID    = checkStreamID
	ServerFilter     = serverFilter
	Visible          = visible
	KeySets          = keySets
)
