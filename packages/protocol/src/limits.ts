/** Size limits of the wire protocol. A field over its limit is `invalid_payload`. */
/** Largest `sdp` string in `webrtc:offer` / `webrtc:answer`: 32 KiB. */
export const MAX_SDP_LENGTH = 32 * 1024;
/** Largest `candidate.candidate` string in `webrtc:ice-candidate`: 1 KiB. */
export const MAX_CANDIDATE_LENGTH = 1024;
/** A message up to this size is always parsed and answered. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Largest token accepted by `auth:handshake` / `reconnect:attempt`. */
export const MAX_TOKEN_LENGTH = 8 * 1024;
/** Largest user id (`sub`) accepted in `to`. */
export const MAX_USER_ID_LENGTH = 256;
/** Largest session id accepted in `reconnect:attempt`. */
export const MAX_SESSION_ID_LENGTH = 128;
