"""Guards that run before any parser sees a byte (research-security.md rows B-E, §5).

One module per input surface: ``archive`` (zips, in memory), ``gltf`` (GLB container, JSON,
prevalidation) with ``accessors`` (accessor checks and bounded reads) and ``gltf_document`` (the
parsed document and its typed field readers), ``image`` (Pillow behind an allowlist and a pixel
cap), ``meshfile`` (STL/PLY declared counts). Loaders (pipeline.loaders) call them and translate every
library exception at their boundary, so callers only ever see these stable codes:

    code                            class              raised when
    empty_input                     MeshError          zero bytes
    too_large                       TooLarge           upload over max_input_bytes
    unsupported_format              UnsupportedFormat  magic bytes of nothing we load
    archive_invalid                 ArchiveError       unreadable zip, bad CRC, lying sizes
    archive_too_many_entries        ArchiveError       entries / central directory over the cap
    archive_too_large               TooLarge           a member or the total inflates past a cap
    archive_ratio                   ArchiveError       a member inflates more than max_zip_ratio:1
    archive_overlap                 ArchiveError       overlapping members (gh-109858 bomb)
    archive_nested                  ArchiveError       a member is itself an archive
    archive_symlink                 ArchiveError       a symlink member
    archive_encrypted               ArchiveError       an encrypted member
    archive_unsupported_method      ArchiveError       compression other than stored/deflate
    archive_unsafe_path             ArchiveError       absolute, drive, backslash, ``..``, long name
    archive_duplicate_name          ArchiveError       two members with the same (case-folded) name
    archive_reference_outside       ArchiveError       a reference with a scheme, absolute or ``..`` out
    archive_member_missing          ArchiveError       a reference to no member / no model member
    image_unsupported_format        ImageError         not one of the allowed Pillow formats
    image_too_many_pixels           ImageError         pixel flood (header over max_image_pixels)
    image_invalid                   ImageError         truncated or corrupt image data
    image_plugin_missing            ImageError         AVIF/HEIC without pillow-heif
    gltf_glb_invalid                GltfError          GLB header/chunk fault, truncation
    gltf_json_too_large             GltfError          JSON over max_json_bytes
    gltf_json_too_deep              GltfError          JSON nesting over max_json_depth
    gltf_json_invalid               GltfError          bad JSON, NaN tokens, schema-type faults
    gltf_external_uri               GltfError          http(s)/file/other scheme, absolute, ``..``
    gltf_data_uri_invalid           GltfError          undecodable base64
    gltf_uri_too_large              GltfError          data URI or member over the buffer cap
    gltf_buffer_invalid             GltfError          buffer without data or shorter than declared
    gltf_buffer_view_out_of_bounds  GltfError          bufferView past its buffer
    gltf_accessor_too_large         GltfError          accessor count / total bytes (bufferless too)
    gltf_accessor_out_of_bounds     GltfError          accessor or sparse data past its bufferView
    gltf_accessor_misaligned        GltfError          §3.6.2.4 offset/stride alignment
    gltf_index_out_of_range         GltfError          an index >= the vertex count
    gltf_invalid_reference          GltfError          a dangling index into a glTF array
    gltf_node_cycle                 GltfError          node cycle, self-child or several parents
    gltf_too_many_nodes             GltfError          nodes over max_nodes
    gltf_unsupported_extension      GltfError          extensionsRequired outside the allowlist
    gltf_invalid_float              GltfError          NaN/inf in POSITION data
    mesh_header_invalid             MeshError          unreadable PLY header
    mesh_header_mismatch            MeshError          STL/PLY declared counts do not fit the body
    mesh_too_large                  MeshError          counts over max_vertices/max_triangles
    mesh_invalid_indices            MeshError          face index 0 (OBJ) or out of range
    mesh_parse_failed               MeshError          trimesh/numpy failed on malformed text
    mesh_no_triangles               MeshError          point clouds, wireframes, empty meshes
"""
