//! The embedded, weight-free demo: four bundled Twemoji graphics as reference images.

/// The bundled SVGs (CC-BY 4.0, see `app/assets/demo/README.md`).
pub const DEMO_SVGS: [(&str, &str); 4] = [
    ("maple leaf", include_str!("../assets/demo/1f341.svg")),
    ("balloon", include_str!("../assets/demo/1f388.svg")),
    ("blue heart", include_str!("../assets/demo/1f499.svg")),
    ("upside-down face", include_str!("../assets/demo/1f643.svg")),
];

/// The demo images rendered by resvg at `size` pixels: straight RGBA8 `(width, height, pixels)`.
pub fn demo_images(size: u32) -> Vec<(u32, u32, Vec<u8>)> {
    DEMO_SVGS
        .iter()
        .filter_map(|(name, svg)| {
            match vecdream_core::render_svg_str(svg, size, size, std::path::Path::new(name)) {
                Ok(img) => Some((img.width, img.height, img.data)),
                Err(e) => {
                    tracing::error!("bundled demo image {name} does not render: {e}");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_images_render_and_differ() {
        let images = super::demo_images(32);
        assert_eq!(images.len(), 4);
        for (w, h, px) in &images {
            assert_eq!((*w, *h, px.len()), (32, 32, 32 * 32 * 4));
            assert!(px.chunks(4).any(|p| p[3] > 0), "an image is empty");
        }
        assert_ne!(images[0].2, images[1].2);
    }
}
