// What became of a recipient in one attempt, as the client session reports it and as delivery
// records it: one type for both.
#pragma once

namespace relay::smtp {

enum class OutcomeKind { kDelivered, kTransient, kPermanent };

}  // namespace relay::smtp
