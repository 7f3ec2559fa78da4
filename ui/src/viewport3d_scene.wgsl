// vecdream 3D viewport: shaded mesh and ground grid drawn offscreen (own MSAA colour and depth targets),
// then composited into egui's render pass over a vertical gradient.

struct Uniforms {
    view_proj: mat4x4<f32>,
    // Camera position (world), w unused.
    eye: vec4<f32>,
    // Direction toward the key light (a headlight slightly above and left of the camera), w unused.
    key: vec4<f32>,
    // Direction toward the fill light (below right), w unused.
    fill: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: Uniforms;

struct VsIn {
    @location(0) position: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) color: vec4<f32>,
};

struct VsOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) color: vec4<f32>,
};

@vertex
fn vs_scene(v: VsIn) -> VsOut {
    var out: VsOut;
    out.clip = u.view_proj * vec4<f32>(v.position, 1.0);
    out.world = v.position;
    out.normal = v.normal;
    out.color = v.color;
    return out;
}

// Lambert from a headlight plus a weak fill and hemisphere ambient, a little Blinn specular; vertex
// colours are linear RGB. Two-sided: a normal facing away from the eye is flipped.
@fragment
fn fs_mesh(in: VsOut) -> @location(0) vec4<f32> {
    let to_eye = normalize(u.eye.xyz - in.world);
    var n = in.normal;
    if dot(n, n) < 1e-12 {
        n = to_eye;
    }
    n = normalize(n);
    if dot(n, to_eye) < 0.0 {
        n = -n;
    }
    let key_dir = normalize(u.key.xyz);
    let key = max(dot(n, key_dir), 0.0);
    let fill = max(dot(n, normalize(u.fill.xyz)), 0.0);
    let hemi = 0.5 + 0.5 * n.y;
    let ambient = mix(0.08, 0.20, hemi);
    let half_dir = normalize(key_dir + to_eye);
    let spec = pow(max(dot(n, half_dir), 0.0), 40.0) * 0.12;
    let rgb = in.color.rgb * (ambient + 0.78 * key + 0.18 * fill) + vec3<f32>(spec);
    return vec4<f32>(rgb, 1.0);
}

// Grid lines: unlit, premultiplied alpha.
@fragment
fn fs_line(in: VsOut) -> @location(0) vec4<f32> {
    return vec4<f32>(in.color.rgb * in.color.a, in.color.a);
}
