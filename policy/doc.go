// Package policy turns a request, its signals and the Cedar policies in
// force into a [lapse.Decision]. Apart from [Load], which reads a folder,
// it is pure: no I/O, safe for concurrent use.
//
// # Entities
//
// Policies are written against the schema Lapse ships ([Schema]):
//
//   - User::"alice" with attributes name and groups, in Group::"g" for each
//     of its groups.
//   - Resource::"orders-db" with environment, tags and connector.
//   - Role::"orders-db/read", in Resource::"orders-db", with name,
//     resource, its resource's environment, tags and connector,
//     max_duration_seconds and approvals. The resource of every decision is
//     the role asked for.
//
// Actions are Action::"Request", Action::"AutoApprove", Action::"Approve"
// and Action::"Extend". The context carries duration_seconds, reason,
// ticket, device, network, time, risk and mfa; see the schema for their
// attributes. For example:
//
//	@id("oncall-prod-read")
//	@reason("on-call engineers may read production for an hour")
//	permit (
//	  principal in Group::"oncall",
//	  action == Action::"Request",
//	  resource is Role in Resource::"orders-db"
//	) when {
//	  resource.name == "read" && context.duration_seconds <= 3600 &&
//	  context.device.managed
//	};
//
//	@id("prod-needs-managed-device")
//	@reason("your device is not managed by the company")
//	forbid (principal, action, resource)
//	when { resource.environment == "prod" && !context.device.managed };
//
// # Annotations
//
// @id names a policy in decisions and the audit log (default: file:line).
// @reason is the sentence shown to the requester. @flag("break-glass")
// labels an allowed decision. @approvals("2") on a permit of Request, or on
// a forbid of AutoApprove, asks for that many human approvals when the
// policy matches; the highest count wins, with the role's configured
// approvals as a floor. Any other annotation is refused.
//
// # Failing closed
//
// An unknown signal is absent from the context, so a policy that reads it
// fails to evaluate; so does one that overflows or reads a missing
// attribute. Any policy that fails to evaluate denies the action, and the
// decision names it with the error. Test `context.network has country`
// to handle an unknown value yourself.
//
// # Built-in policies
//
// [Builtin] turns each role's requesters, approvers, approvals and
// max_duration from configuration into equivalent policies, which apply
// alongside the folder's.
package policy
