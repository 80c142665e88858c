// Package eventbus carries idlog's events to NATS JetStream: the Relay that follows the event
// store's global log from its checkpoint and publishes every event, in order, as a CloudEvents 1.0
// JSON message on idlog.events.<EventType>.<uid> in the stream IDLOG_EVENTS; the Notifier that
// publishes one-shot secrets (email codes, reset tokens) on idlog.notifications.<kind> to a
// short-lived stream of their own, never to the log; Consume, a JetStream consumer of the events;
// the Client, a NATS connection that keeps trying until the server answers; and the embedded
// Server that the default setup runs in-process.
//
// Delivery: every stored event reaches IDLOG_EVENTS exactly once and in global order, even when
// NATS is down while events are appended or the relay stops between a publish and its checkpoint.
// The relay advances its checkpoint only past events JetStream acknowledged, JetStream drops a
// republished event by its Nats-Msg-Id (the event id), and each message names the id of the one
// before it (Nats-Expected-Last-Msg-Id), so no message can be stored after a predecessor that is
// missing.
//
// Security: the embedded server admits only NKEY users whose seeds idlog generates (credentials.go);
// only idlog publishes on idlog.>; IDLOG_EVENTS and IDLOG_AUDIT deny delete and purge; and every
// message idlog publishes is signed (signature.go), so consumers verify it with VerifyEvent.
package eventbus
