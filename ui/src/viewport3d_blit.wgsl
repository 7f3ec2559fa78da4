// vecdream 3D viewport: composites the offscreen scene into egui's render pass over a vertical gradient.

struct Backdrop {
    top: vec4<f32>,
    bottom: vec4<f32>,
};

@group(0) @binding(0) var scene: texture_2d<f32>;
@group(0) @binding(1) var scene_sampler: sampler;
@group(0) @binding(2) var<uniform> backdrop: Backdrop;

struct BlitOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// One triangle covering the viewport (egui sets the pass's viewport to the widget's rectangle).
@vertex
fn vs_blit(@builtin(vertex_index) i: u32) -> BlitOut {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var out: BlitOut;
    out.clip = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    return out;
}

fn composite(uv: vec2<f32>) -> vec4<f32> {
    // The resolved scene is premultiplied (cleared to transparent) and stored as sRGB: sampling gives linear.
    let c = textureSample(scene, scene_sampler, uv);
    let bg = mix(backdrop.top.rgb, backdrop.bottom.rgb, clamp(uv.y, 0.0, 1.0));
    return vec4<f32>(c.rgb + bg * (1.0 - c.a), 1.0);
}

fn gamma_from_linear(rgb: vec3<f32>) -> vec3<f32> {
    let cutoff = rgb < vec3<f32>(0.0031308);
    let lower = rgb * vec3<f32>(12.92);
    let higher = vec3<f32>(1.055) * pow(rgb, vec3<f32>(1.0 / 2.4)) - vec3<f32>(0.055);
    return select(higher, lower, cutoff);
}

// For an sRGB-aware framebuffer (the hardware encodes).
@fragment
fn fs_blit_linear(in: BlitOut) -> @location(0) vec4<f32> {
    return composite(in.uv);
}

// For a plain Unorm framebuffer (what egui prefers): encode sRGB here.
@fragment
fn fs_blit_gamma(in: BlitOut) -> @location(0) vec4<f32> {
    let c = composite(in.uv);
    return vec4<f32>(gamma_from_linear(clamp(c.rgb, vec3<f32>(0.0), vec3<f32>(1.0))), 1.0);
}
