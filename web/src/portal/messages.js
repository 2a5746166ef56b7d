// The API's stable error codes (docs/api.md "Errors", the pipeline's codes) in plain words.
// The code itself is shown beside the sentence, small, for support requests.

const MODEL_FORMATS = "GLB, OBJ, STL, PLY, or a zip holding a glTF or OBJ with its files";
const PHOTO_FORMATS = "JPEG, PNG, WebP, AVIF or HEIC";

const EXACT = {
  // logging in and permissions
  invalid_credentials: "The email or password is wrong.",
  unauthorized: "Please log in first.",
  invalid_token: "Your session is no longer valid. Please log in again.",
  token_expired: "Your session has expired. Please log in again.",
  forbidden: "This account may not do that.",
  not_owner: "This belongs to another exhibitor.",
  // what was sent
  unsupported_format: `This file is not a format we can use. 3D models: ${MODEL_FORMATS}. Photos and logos: ${PHOTO_FORMATS}.`,
  kind_mismatch: "This file is a photo where a 3D model was expected, or the other way round. Use the other upload button.",
  unsupported_media_type: "This file is not a format we can use.",
  empty_input: "The file is empty.",
  unreadable_input: "The file could not be read. It may be damaged.",
  too_large: "The file is too large to process.",
  upload_too_large: "The file is too large to upload (200 MB at most for 3D models; 25 MB for photos and logos).",
  payload_too_large: "The file is too large to upload.",
  chunk_too_large: "The file is too large to upload in one piece. Please try again.",
  size_exceeded: "More bytes arrived than the file has. Please try again.",
  size_mismatch: "The file did not arrive complete. Please try again.",
  sha256_mismatch: "The file changed or was damaged on the way. Please try again.",
  upload_incomplete: "The file did not arrive complete. Please try again.",
  upload_expired: "The upload took too long and expired. Please start again.",
  upload_finalized: "This upload is already finished.",
  offset_mismatch: "The upload lost its place. Please try again.",
  // quotas
  quota_bytes: "Your organisation's storage is full. Delete old files or ask the organiser for more space.",
  quota_uploads: "Too many uploads are running at once. Wait for some to finish, then try again.",
  quota_products: "Your organisation has reached its limit of products.",
  quota_exceeded: "Your organisation has reached a limit set by the organiser.",
  // processing (the pipeline)
  mesh_no_triangles: "The 3D model has no surfaces to show (it has no triangles).",
  mesh_empty: "The 3D model is empty.",
  mesh_degenerate: "The 3D model's surfaces are all flat or collapsed, so there is nothing to show.",
  mesh_too_large: "The 3D model has too many triangles or points.",
  mesh_non_finite: "The 3D model contains broken coordinates.",
  mesh_not_finite: "The 3D model contains broken coordinates.",
  mesh_unit_invalid: "The 3D model's size units are not valid.",
  gltf_external_uri: "The glTF file refers to other files we cannot see. Upload a GLB, or a zip with the .gltf file and everything it uses.",
  gltf_unsupported_extension: "The glTF file needs an extension we do not support. Export it again without special extensions.",
  gltf_truncated: "The glTF file is cut short. Export it again.",
  image_too_many_pixels: "The picture has too many pixels. Please make it smaller.",
  image_unsupported_format: `This picture's format is not supported. Use ${PHOTO_FORMATS}.`,
  archive_ratio: "The zip file expands to far more than its size, so we refuse it.",
  archive_encrypted: "The zip file is password-protected. Upload it without a password.",
  archive_nested: "The zip file contains another zip. Put the files in one zip.",
  archive_too_large: "The zip file expands to more than we accept.",
  archive_too_many_entries: "The zip file has too many files in it.",
  archive_member_missing: "A file that the model uses is missing from the zip.",
  limit_memory: "The 3D model is too complex to process within our memory limit. Simplify it and try again.",
  limit_cpu: "The 3D model took too long to process. Simplify it and try again.",
  limit_wall: "The 3D model took too long to process. Simplify it and try again.",
  upload_missing: "The uploaded file is no longer stored. Please upload it again.",
  // the server
  database_unavailable: "The server is having trouble. Please try again in a minute.",
  storage_unavailable: "The server's file storage is having trouble. Please try again in a minute.",
  service_unavailable: "The server is having trouble. Please try again in a minute.",
  network_error: "The connection to the server was lost. Check your network and try again.",
  validation_error: "Some fields are not valid. See the notes next to them.",
  product_exists: "This booth already has a product with this name.",
  manifest_not_found: "The hall has not been published yet, so there is no 3D view.",
  insecure_context: "Files over 25 MB can only be uploaded from a secure (https) page.",
  preview_failed: "The 3D preview could not be loaded.",
  job_not_found: "The processing job is gone. Please upload the file again.",
  booth_not_found: "The booth no longer exists.",
  product_not_found: "The product no longer exists.",
};

// Families of codes share a sentence (mesh_*, gltf_*, archive_*, image_*).
const PREFIXES = [
  ["mesh_", "The 3D model's geometry could not be read. Export it again and retry."],
  ["gltf_", "The glTF file is damaged or not valid. Export it again and retry."],
  ["archive_", "The zip file cannot be used. Put the model and its files in a plain zip."],
  ["image_", "The picture could not be read. It may be damaged."],
  ["limit_", "The file is too complex to process within our limits."],
  ["quota_", "Your organisation has reached a limit set by the organiser."],
];

export function plainWords(code) {
  if (code && EXACT[code]) return EXACT[code];
  for (const [prefix, sentence] of PREFIXES) if (code?.startsWith(prefix)) return sentence;
  if (code?.endsWith("_invalid")) return "The file is not valid and could not be processed.";
  return "Something went wrong. Please try again, and tell the organiser if it keeps happening.";
}
