// The minimal equivalent of @grafana/create-plugin's .config/webpack: one AMD
// bundle, dist/module.js, which Grafana loads with SystemJS; Grafana's own
// packages, React and the libraries Grafana shares are externals.
const path = require('path');
const pluginJson = require('./plugin.json');

module.exports = (_env, argv) => ({
  mode: argv.mode || 'production',
  context: path.join(__dirname, 'src'),
  devtool: argv.mode === 'development' ? 'eval-source-map' : 'source-map',
  entry: { module: './module.ts' },
  externals: [
    'lodash',
    'react',
    'react-dom',
    'react-router',
    'react-router-dom',
    '@grafana/data',
    '@grafana/runtime',
    '@grafana/ui',
    '@grafana/slate-react',
    '@emotion/css',
    '@emotion/react',
    'emotion',
    'rxjs',
    'rxjs/operators',
    'moment',
    'jquery',
    'd3',
    'i18next',
    // Anything under @grafana/data/... and the like.
    ({ request }, callback) => {
      const prefix = 'grafana/';
      if (request && request.startsWith(prefix)) {
        return callback(undefined, request.slice(prefix.length));
      }
      callback();
    },
  ],
  module: {
    rules: [
      {
        test: /\.[tj]sx?$/,
        exclude: /node_modules/,
        use: {
          loader: 'swc-loader',
          options: {
            jsc: {
              baseUrl: path.resolve(__dirname, 'src'),
              target: 'es2015',
              loose: false,
              parser: { syntax: 'typescript', tsx: true, decorators: false, dynamicImport: true },
            },
          },
        },
      },
    ],
  },
  output: {
    clean: { keep: /^(gpx_|plugin\.json$)/ },
    filename: '[name].js',
    library: { type: 'amd' },
    path: path.resolve(__dirname, 'dist'),
    publicPath: `public/plugins/${pluginJson.id}/`,
    uniqueName: pluginJson.id,
  },
  resolve: {
    extensions: ['.js', '.jsx', '.ts', '.tsx'],
    modules: [path.resolve(__dirname, 'src'), 'node_modules'],
  },
  performance: { hints: false },
});
