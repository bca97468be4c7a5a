// As @grafana/create-plugin's mock: @grafana/ui's Icon fetches its SVGs,
// which jsdom cannot; draw an empty one named after the icon.
import React from 'react';

const SVG_FILE_NAME_REGEX = /(.+)\/(.+)\.svg$/;

export const cacheStore: Record<string, unknown> = Object.create(null);

const InlineSVG = ({ src }: { src: string }) => {
  const [, , name] = src.match(SVG_FILE_NAME_REGEX) ?? [];
  return <svg xmlns="http://www.w3.org/2000/svg" data-testid={name} viewBox="0 0 24 24" />;
};

export default InlineSVG;
